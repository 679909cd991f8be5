import CellRouting
import Foundation
import LocalCluster
import OrderCellPlatform
import OrderModel

/// What `ordercell cluster up` started, written to `<dir>/cluster.json`.
public struct LocalClusterState: Codable, Sendable {
    /// One process of the cluster: what it is, where it listens, its pid.
    public struct Component: Codable, Sendable {
        public var name: String
        /// `postgres`, `control`, `cell` or `proxy`.
        public var kind: String
        public var port: Int
        public var pid: Int32?
        public var log: String
        public var dataDirectory: String?
        public var cell: Int?
    }

    public var directory: String
    public var cells: Int
    public var basePort: Int
    public var adminToken: String
    /// The followers' token (role viewer) for reading the routing table; nil in state files written before it existed.
    public var followerToken: String?
    public var components: [Component]

    public var proxyURLs: [String] { components.filter { $0.kind == "proxy" }.map { "http://127.0.0.1:\($0.port)" } }
    public var controlURL: String { "http://127.0.0.1:\(basePort + 2)" }
}

/// Starts and stops a whole cluster on one machine, on loopback: per cell a
/// PostgreSQL primary and a synchronous streaming replica and two cell
/// services; a control database and the control plane; two proxies.
///
/// Ports from `basePort` (default 8080): proxies `base` and `base+1`,
/// control plane `base+2`, control database `base+3`, cell N's services
/// (the cell protocol) `base+100+2(N-1)` and `+1`, cell N's primary
/// `base+50+2(N-1)` and its replica `+1`.
public struct LocalClusterRunner: Sendable {
    public var directory: String
    public var cells: Int
    public var basePort: Int
    public var adminToken: String
    public var executable: String
    /// Whether a cell's commits wait for its replica (the default: an
    /// acknowledged order survives the loss of the primary).
    public var synchronousCommit: PostgresServer.SynchronousCommit

    public init(
        directory: String, cells: Int, basePort: Int, adminToken: String, executable: String,
        synchronousCommit: PostgresServer.SynchronousCommit = .anyOneStandby
    ) {
        self.directory = URL(fileURLWithPath: directory).standardizedFileURL.path
        self.cells = cells
        self.basePort = basePort
        self.adminToken = adminToken
        self.executable = executable
        self.synchronousCommit = synchronousCommit
    }

    var statePath: String { directory + "/cluster.json" }
    var logs: String { directory + "/logs" }
    var controlDatabasePort: Int { basePort + 3 }
    func cellServicePorts(_ cell: Int) -> [Int] { [basePort + 100 + 2 * (cell - 1), basePort + 101 + 2 * (cell - 1)] }
    func primaryPort(_ cell: Int) -> Int { basePort + 50 + 2 * (cell - 1) }
    func replicaPort(_ cell: Int) -> Int { basePort + 51 + 2 * (cell - 1) }

    /// Creates what is missing, starts everything, waits until the proxies are ready.
    public func up(report: (String) -> Void) async throws -> LocalClusterState {
        precondition((1...200).contains(cells))
        var ports = [basePort, basePort + 1, basePort + 2]
        for cell in 1...cells { ports += cellServicePorts(cell) }
        if let busy = ports.first(where: { TCPProbe.accepts(port: $0) }) {
            throw ValidationFailure("port \(busy) is already in use: is a cluster running? (ordercell cluster status / down), or choose --base-port")
        }
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory + "/pg", withIntermediateDirectories: true)
        var components: [LocalClusterState.Component] = []

        // Control database.
        let control = PostgresServer(dataDirectory: directory + "/pg/control", port: controlDatabasePort)
        try await startPostgres(control, replicaOf: nil, name: "control", database: "ordercell_control", report: report)
        components.append(.init(name: "control-db", kind: "postgres", port: control.port, pid: control.processID, log: control.logFile, dataDirectory: control.dataDirectory))

        // Cell storage: primary + synchronous replica per cell.
        var routes: [CellRoute] = []
        for cell in 1...cells {
            let primary = PostgresServer(dataDirectory: directory + "/pg/cell-\(cell)-primary", port: primaryPort(cell))
            let replica = PostgresServer(dataDirectory: directory + "/pg/cell-\(cell)-replica", port: replicaPort(cell))
            try await startPostgres(primary, replicaOf: nil, name: "cell \(cell) primary", database: nil, report: report)
            try await startPostgres(replica, replicaOf: primary, name: "cell \(cell) replica", database: nil, report: report)
            try await createDatabase("cell_\(cell)", on: primary)
            components.append(.init(name: "cell-\(cell)-primary", kind: "postgres", port: primary.port, pid: primary.processID, log: primary.logFile, dataDirectory: primary.dataDirectory, cell: cell))
            components.append(.init(name: "cell-\(cell)-replica", kind: "postgres", port: replica.port, pid: replica.processID, log: replica.logFile, dataDirectory: replica.dataDirectory, cell: cell))
            routes.append(
                CellRoute(
                    id: CellID(cell)!, partition: "normal", endpoints: cellServicePorts(cell).map { CellServiceEndpoint(host: "127.0.0.1", port: $0) },
                    storage: CellStorageRoute(
                        primary: PostgresEndpoint(host: "127.0.0.1", port: primary.port, database: "cell_\(cell)", username: "ordercell"),
                        replicas: [PostgresEndpoint(host: "127.0.0.1", port: replica.port, database: "cell_\(cell)", username: "ordercell")]
                    )
                )
            )
        }
        let table = try RoutingTable(
            cells: routes, partitions: [Partition(name: "normal", kind: .normal), Partition(name: "vip", kind: .vip)],
            defaultPartition: "normal"
        )
        let routingFile = directory + "/routing.json"
        try JSONEncoder().encode(table).write(to: URL(fileURLWithPath: routingFile))

        // Control plane, cell services, proxies. The followers read the routing
        // table with a viewer token of their own, made fresh for this cluster.
        var random = SystemRandomNumberGenerator()
        let followerToken = (0..<4).map { _ in String(random.next() as UInt64, radix: 16) }.joined(separator: "-")
        let controlURL = "http://127.0.0.1:\(basePort + 2)"
        components.append(
            try await spawn(
                name: "control", kind: "control", port: basePort + 2,
                arguments: [
                    "control", "--port", "\(basePort + 2)", "--database", "postgres://ordercell@127.0.0.1:\(controlDatabasePort)/ordercell_control",
                    // Loopback PostgreSQL servers without certificates, as the cell services are told.
                    "--database-tls", "disable", "--postgres-tls", "disable", "--cell-tls", "disable",
                    "--routing", routingFile, "--admin-token", adminToken, "--token", "followers:viewer:\(followerToken)",
                ],
                report: report
            )
        )
        for cell in 1...cells {
            for (index, port) in cellServicePorts(cell).enumerated() {
                components.append(
                    try await spawn(
                        name: "cell-\(cell)-service-\(index + 1)", kind: "cell", port: port,
                        arguments: [
                            "cell", "--cell", "\(cell)", "--port", "\(port)", "--control", controlURL, "--cell-tls", "disable",
                            "--control-token", followerToken,
                            "--postgres-tls", "disable",
                            "--routing-snapshot", "\(directory)/cell-\(cell)-\(port).routing.json",
                        ],
                        report: report, cell: cell
                    )
                )
            }
        }
        for port in [basePort, basePort + 1] {
            components.append(
                try await spawn(
                    name: "proxy-\(port - basePort + 1)", kind: "proxy", port: port,
                    arguments: [
                        "proxy", "--port", "\(port)", "--control", controlURL, "--cell-tls", "disable", "--control-token", followerToken, "--admin-token", adminToken,
                        "--routing-snapshot", "\(directory)/proxy-\(port - basePort + 1).routing.json",
                    ],
                    report: report
                )
            )
        }
        let state = LocalClusterState(
            directory: directory, cells: cells, basePort: basePort, adminToken: adminToken, followerToken: followerToken, components: components
        )
        try JSONEncoder().encode(state).write(to: URL(fileURLWithPath: statePath))
        return state
    }

    /// Stops every process and server `up` started; the data stays.
    public func down(report: (String) -> Void) async throws {
        guard let state = try? Self.state(in: directory) else {
            report("no cluster in \(directory)")
            return
        }
        let processes = state.components.filter { $0.kind != "postgres" }.reversed()
        for component in processes {
            if let pid = component.pid, kill(pid, 0) == 0 { kill(pid, SIGTERM) }
        }
        for component in processes {
            guard let pid = component.pid else { continue }
            for _ in 0..<100 where kill(pid, 0) == 0 { try await Task.sleep(for: .milliseconds(100)) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
            report("stopped \(component.name)")
        }
        for component in state.components where component.kind == "postgres" {
            guard let dataDirectory = component.dataDirectory else { continue }
            let server = PostgresServer(dataDirectory: dataDirectory, port: component.port)
            if server.processID != nil {
                try? await server.stop(mode: "fast")
                report("stopped \(component.name)")
            }
        }
    }

    /// The state file of the cluster in `directory`.
    public static func state(in directory: String) throws -> LocalClusterState {
        let path = URL(fileURLWithPath: directory).standardizedFileURL.path + "/cluster.json"
        return try JSONDecoder().decode(LocalClusterState.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// One line per component: running or not, and where.
    public static func status(in directory: String) throws -> [String] {
        let state = try state(in: directory)
        return state.components.map { component in
            var running = false
            if component.kind == "postgres", let dataDirectory = component.dataDirectory {
                let pid = PostgresServer(dataDirectory: dataDirectory, port: component.port).processID
                running = pid.map { kill($0, 0) == 0 } ?? false
            } else if let pid = component.pid {
                running = kill(pid, 0) == 0
            }
            let name = component.name.padding(toLength: 24, withPad: " ", startingAt: 0)
            return "\(name) \(running ? "running" : "stopped")  127.0.0.1:\(component.port)  log \(component.log)"
        }
    }

    // MARK: - Steps

    private func startPostgres(_ server: PostgresServer, replicaOf primary: PostgresServer?, name: String, database: String?, report: (String) -> Void) async throws {
        let initialized = FileManager.default.fileExists(atPath: server.dataDirectory + "/PG_VERSION")
        if !initialized {
            if let primary {
                try await server.initializeReplica(of: primary, name: name.replacingOccurrences(of: " ", with: "_"))
            } else {
                try await server.initializePrimary(synchronousCommit: database == nil ? synchronousCommit : .off)
            }
        }
        let running = await server.isAcceptingConnections()
        if !running { try await server.start() }
        if let database, !initialized { try await createDatabase(database, on: server) }
        report("\(name): PostgreSQL on 127.0.0.1:\(server.port)\(primary == nil ? "" : " (streaming replica)")")
    }

    private func createDatabase(_ name: String, on server: PostgresServer) async throws {
        let exists = try await Command.runPostgresTool([
            Command.postgresTool("psql"), "-h", "127.0.0.1", "-p", "\(server.port)", "-U", server.user, "-d", "postgres", "-tAc",
            "SELECT 1 FROM pg_database WHERE datname = '\(name)'",
        ])
        guard !exists.contains("1") else { return }
        try await Command.runPostgresTool([
            Command.postgresTool("psql"), "-h", "127.0.0.1", "-p", "\(server.port)", "-U", server.user, "-d", "postgres",
            "-v", "ON_ERROR_STOP=1", "-c", "CREATE DATABASE \(name)",
        ])
    }

    private func spawn(name: String, kind: String, port: Int, arguments: [String], report: (String) -> Void, cell: Int? = nil) async throws -> LocalClusterState.Component {
        let log = "\(logs)/\(name).log"
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try handle.seekToEnd()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try handle.close()
        try await Self.waitForPort(port, process: process, name: name, log: log)
        report("\(name): pid \(process.processIdentifier), 127.0.0.1:\(port)")
        return .init(name: name, kind: kind, port: port, pid: process.processIdentifier, log: log, cell: cell)
    }

    /// Waits until something accepts connections on `port`.
    static func waitForPort(_ port: Int, process: Process, name: String, log: String, timeout: Duration = .seconds(60)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            guard process.isRunning else {
                let tail = (try? String(contentsOfFile: log, encoding: .utf8))?.suffix(1500) ?? ""
                throw ValidationFailure("\(name) exited during start-up; its log \(log) ends with:\n\(tail)")
            }
            if TCPProbe.accepts(port: port) {
                // Listening, and still alive a moment later (not failing on something else's port).
                try await Task.sleep(for: .milliseconds(100))
                if process.isRunning { return }
                continue
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ValidationFailure("\(name) did not listen on port \(port) within \(timeout)")
    }
}

/// Whether something accepts TCP connections on a loopback port.
public enum TCPProbe {
    public static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
