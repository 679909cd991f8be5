import CellProtocol
import CellRouting
import Foundation
import LocalCluster
import OrderCellPlatform
import OrderHTTP
import OrderModel

/// What `ordercell cluster up` started, written to `<dir>/cluster.json`.
public struct LocalClusterState: Codable, Sendable {
    /// One process of the cluster: what it is, where it listens, its pid.
    public struct Component: Codable, Sendable {
        public var name: String
        /// `postgres` (the control database), `etcd`, `patroni` (a cell's PostgreSQL
        /// server under Patroni), `control`, `cell` or `proxy`.
        public var kind: String
        /// Where it serves: PostgreSQL's port for `postgres` and `patroni`, the client port for `etcd`.
        public var port: Int
        /// The process's pid (Patroni's for `patroni`; nil for `postgres`: its data directory's postmaster.pid says).
        public var pid: Int32?
        public var log: String
        public var dataDirectory: String?
        public var cell: Int?
        /// Patroni's REST API port (`patroni` only; nil in state files written before Patroni).
        public var apiPort: Int?

        public init(
            name: String, kind: String, port: Int, pid: Int32?, log: String, dataDirectory: String? = nil, cell: Int? = nil, apiPort: Int? = nil
        ) {
            self.name = name
            self.kind = kind
            self.port = port
            self.pid = pid
            self.log = log
            self.dataDirectory = dataDirectory
            self.cell = cell
            self.apiPort = apiPort
        }
    }

    public var directory: String
    public var cells: Int
    public var basePort: Int
    public var adminToken: String
    /// The followers' token (role viewer) for reading the routing table; nil in state files written before it existed.
    public var followerToken: String?
    /// Where the cluster's throwaway CA and its processes' certificates are
    /// (``ThrowawayCertificateAuthority``); nil: the cluster runs in plaintext.
    public var tlsDirectory: String?
    public var components: [Component]

    /// The CA every process trusts (nil: plaintext): what a client of the cluster trusts too.
    public var caFile: String? { tlsDirectory.map { $0 + "/ca.pem" } }
    /// The operator's certificate and key for calling a cell service directly (`ordercell admin cell call`).
    public var operatorCertificate: (certificate: String, key: String)? {
        tlsDirectory.map { ($0 + "/operator.pem", $0 + "/operator.key") }
    }
    var scheme: String { tlsDirectory == nil ? "http" : "https" }
    public var proxyURLs: [String] { components.filter { $0.kind == "proxy" }.map { "\(scheme)://127.0.0.1:\($0.port)" } }
    public var controlURL: String { "\(scheme)://127.0.0.1:\(basePort + 2)" }
    /// etcd's client URLs, comma-separated (what the control plane's `--patroni-etcd` takes).
    public var etcdURLs: String { components.filter { $0.kind == "etcd" }.map { "http://127.0.0.1:\($0.port)" }.joined(separator: ",") }
    /// Cell `cell`'s Patroni members, `cell-N-m1` first.
    public func patroniMembers(cell: Int) -> [Component] { components.filter { $0.kind == "patroni" && $0.cell == cell } }
}

/// Starts and stops a whole cluster on one machine, on loopback: per cell two
/// PostgreSQL servers under Patroni (a leader and its synchronous standby; a
/// failed leader is replaced by the standby without an operator) and two cell
/// services; a 3-member etcd where Patroni keeps each cell's leader lock; a
/// control database (a plain PostgreSQL server) and the control plane, which
/// follows the cells' leaders in etcd; two proxies.
///
/// Ports from `basePort` (default 8080): proxies `base` and `base+1`,
/// control plane `base+2`, control database `base+3`, cell N's services
/// (the cell protocol) `base+100+2(N-1)` and `+1`, cell N's PostgreSQL
/// members 1 and 2 `base+50+2(N-1)` and `+1`, their Patroni REST APIs
/// `base+300+2(N-1)` and `+1`, etcd member i's client port
/// `base+400+2(i-1)` and its peer port `+1`.
public struct LocalClusterRunner: Sendable {
    public var directory: String
    public var cells: Int
    public var basePort: Int
    public var adminToken: String
    public var executable: String
    /// Whether a cell's commits wait for its standby (the default: an
    /// acknowledged order survives the loss of the leader): Patroni's `synchronous_mode`.
    public var synchronousCommit: PostgresServer.SynchronousCommit
    /// Patroni's `synchronous_mode_strict`: commits wait even while the cell has no
    /// standby (after a failover, until the old leader rejoins).
    public var synchronousModeStrict: Bool

    /// The most cells the port layout has room for (cell 26's PostgreSQL ports would be cell 1's services').
    public static let maximumCells = 25

    /// Whether the proxies take only signed requests (docs/security.md): on unless asked otherwise.
    public var signedRequests = true
    /// Whether every hop speaks TLS (docs/security.md): the public API and
    /// the control plane over HTTPS, the cell protocol with mutual TLS, all
    /// with certificates of a throwaway CA made for the cluster. On unless
    /// asked otherwise.
    public var transportSecurity = true
    /// Options of the cell services' notifiers (`--notify-…`), passed on as they are.
    public var notifierArguments: [String] = []

    public init(
        directory: String, cells: Int, basePort: Int, adminToken: String, executable: String,
        synchronousCommit: PostgresServer.SynchronousCommit = .anyOneStandby, synchronousModeStrict: Bool = false, signedRequests: Bool = true,
        transportSecurity: Bool = true, notifierArguments: [String] = []
    ) {
        self.notifierArguments = notifierArguments
        self.signedRequests = signedRequests
        self.transportSecurity = transportSecurity
        self.directory = URL(fileURLWithPath: directory).standardizedFileURL.path
        self.cells = cells
        self.basePort = basePort
        self.adminToken = adminToken
        self.executable = executable
        self.synchronousCommit = synchronousCommit
        self.synchronousModeStrict = synchronousModeStrict
    }

    var statePath: String { directory + "/cluster.json" }
    var logs: String { directory + "/logs" }
    var controlDatabasePort: Int { basePort + 3 }
    func cellServicePorts(_ cell: Int) -> [Int] { [basePort + 100 + 2 * (cell - 1), basePort + 101 + 2 * (cell - 1)] }
    /// PostgreSQL of cell `cell`'s member `member` (1 or 2).
    func postgresPort(cell: Int, member: Int) -> Int { basePort + 50 + 2 * (cell - 1) + (member - 1) }
    /// Patroni's REST API of cell `cell`'s member `member`.
    func patroniAPIPort(cell: Int, member: Int) -> Int { basePort + 300 + 2 * (cell - 1) + (member - 1) }
    var etcdClientPorts: [Int] { (0..<3).map { basePort + 400 + 2 * $0 } }
    var etcd: EtcdCluster { EtcdCluster(directory: directory + "/etcd", logDirectory: logs, clientPorts: etcdClientPorts) }
    var patroniSettings: PatroniSettings {
        PatroniSettings(synchronousMode: synchronousCommit == .anyOneStandby, synchronousModeStrict: synchronousModeStrict)
    }

    func patroniMember(cell: Int, member: Int) -> PatroniMember {
        let name = "cell-\(cell)-m\(member)"
        return PatroniMember(
            cell: cell, member: member, postgresPort: postgresPort(cell: cell, member: member), apiPort: patroniAPIPort(cell: cell, member: member),
            dataDirectory: "\(directory)/pg/\(name)", configDirectory: "\(directory)/patroni", logFile: "\(logs)/\(name).log",
            etcdHosts: etcd.hosts, settings: patroniSettings
        )
    }

    /// Creates what is missing, starts everything, waits until the proxies are ready.
    public func up(report: (String) -> Void) async throws -> LocalClusterState {
        guard (1...Self.maximumCells).contains(cells) else {
            throw ValidationFailure("--cells must be 1 to \(Self.maximumCells) (the port layout of docs/deployment.md has room for that many)")
        }
        let patroniVersion = try await PatroniMember.checkExecutable()
        _ = try EtcdServer.executable
        let control = PostgresServer(dataDirectory: directory + "/pg/control", port: controlDatabasePort)
        let etcd = self.etcd
        let patroniMembers = (1...cells).flatMap { [patroniMember(cell: $0, member: 1), patroniMember(cell: $0, member: 2)] }
        var ports = [basePort, basePort + 1, basePort + 2]
        for cell in 1...cells { ports += cellServicePorts(cell) }
        // Servers left running (an interrupted `up`) are kept; the others' ports must be free.
        if control.processID == nil { ports.append(control.port) }
        for member in etcd.members where member.runningProcessID == nil { ports += [member.clientPort, member.peerPort] }
        for member in patroniMembers where member.runningProcessID == nil { ports += [member.postgresPort, member.apiPort] }
        if let busy = ports.first(where: { TCPProbe.accepts(port: $0) }) {
            throw ValidationFailure("port \(busy) is already in use: is a cluster running? (ordercell cluster status / down), or choose --base-port")
        }
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory + "/pg", withIntermediateDirectories: true)
        var components: [LocalClusterState.Component] = []

        // The state file lists every component before it starts, so that
        // `cluster down` stops what a failed `up` started.
        let tlsDirectory = transportSecurity ? directory + "/tls" : nil
        func save(followerToken: String? = nil) throws {
            let state = LocalClusterState(
                directory: directory, cells: cells, basePort: basePort, adminToken: adminToken, followerToken: followerToken,
                tlsDirectory: tlsDirectory, components: components
            )
            try JSONEncoder().encode(state).write(to: URL(fileURLWithPath: statePath))
        }
        components.append(.init(name: "control-db", kind: "postgres", port: control.port, pid: nil, log: control.logFile, dataDirectory: control.dataDirectory))
        for (index, member) in etcd.members.enumerated() {
            components.append(.init(name: "etcd-\(index + 1)", kind: "etcd", port: member.clientPort, pid: nil, log: member.logFile, dataDirectory: member.dataDirectory))
        }
        for member in patroniMembers {
            components.append(
                .init(
                    name: member.name, kind: "patroni", port: member.postgresPort, pid: nil, log: member.logFile,
                    dataDirectory: member.dataDirectory, cell: member.cell, apiPort: member.apiPort
                )
            )
        }
        try save()

        // The control database (a plain PostgreSQL server) starts while etcd and each cell's Patroni cluster do.
        async let controlDatabase: Void = startControlDatabase(control, database: "ordercell_control")
        let etcdPIDs = try await etcd.start(report: report)
        report("Patroni: \(patroniVersion)")
        let leaders = try await startCellStorage(report: report)
        try await controlDatabase
        report("control database: PostgreSQL on 127.0.0.1:\(control.port)")
        for index in components.indices {
            switch components[index].kind {
            case "etcd": components[index].pid = etcdPIDs[etcd.members.firstIndex { $0.dataDirectory == components[index].dataDirectory }!]
            case "patroni": components[index].pid = patroniMembers.first { $0.name == components[index].name }?.runningProcessID
            default: break
            }
        }
        try save()

        var routes: [CellRoute] = []
        for cell in 1...cells {
            let members = [patroniMember(cell: cell, member: 1), patroniMember(cell: cell, member: 2)]
            let leader = leaders[cell]!
            func endpoint(_ member: PatroniMember) -> PostgresEndpoint {
                PostgresEndpoint(host: "127.0.0.1", port: member.postgresPort, database: member.database, username: member.superuser)
            }
            routes.append(
                CellRoute(
                    id: CellID(cell)!, partition: "normal", endpoints: cellServicePorts(cell).map { CellServiceEndpoint(host: "127.0.0.1", port: $0) },
                    storage: CellStorageRoute(primary: endpoint(leader), replicas: members.filter { $0.name != leader.name }.map(endpoint))
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
        let controlURL = "\(transportSecurity ? "https" : "http")://127.0.0.1:\(basePort + 2)"
        // TLS: every process its own certificate of the cluster's CA, naming its role on the cell protocol.
        var tls: (ThrowawayCertificateAuthority, control: [String], cell: [String], proxies: [[String]])?
        if let tlsDirectory {
            let authority = try ThrowawayCertificateAuthority.loadOrCreate(in: tlsDirectory)
            func arguments(_ name: String, _ role: CellCaller.Role?, http: Bool) throws -> [String] {
                let issued = try authority.issue(name, identity: role.map { CellCaller.uri(role: $0, name: name) })
                return ["--cell-tls", "require", "--tls-certificate", issued.certificateFile, "--tls-key", issued.keyFile, "--tls-ca", authority.caFile]
                    + (http ? ["--http-tls", "require"] : [])
            }
            tls = (
                authority, try arguments("control", .control, http: true), try arguments("cell-services", nil, http: false),
                try [1, 2].map { try arguments("proxy-\($0)", .proxy, http: true) }
            )
            // An operator's own certificate, for `ordercell admin cell call`.
            _ = try authority.issue("operator", identity: CellCaller.uri(role: .operator, name: "admin"))
            report("TLS: every hop, certificates of the cluster's own CA \(authority.caFile)")
        }
        // The credential key: the control plane seals access keys' secrets with it, the proxies open them.
        let credentialKey = directory + "/credential.key"
        _ = try CredentialSealer.loadOrCreate(keyFile: credentialKey)
        // A key of its own for merchants' notification secrets: the cell services hold it, never the credential key.
        let notificationKey = directory + "/notification.key"
        _ = try CredentialSealer.loadOrCreate(keyFile: notificationKey)
        // Tokens go to the processes in files (mode 0600), never on a command line, where ps shows them.
        let secrets = directory + "/secrets"
        try FileManager.default.createDirectory(atPath: secrets, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        func secretFile(_ name: String, _ text: String) throws -> String {
            let path = "\(secrets)/\(name)"
            try LocalFiles.write(text, to: path, mode: 0o600)
            return path
        }
        let controlTokens = try secretFile("control.tokens", "admin:operator:\(adminToken)\nfollowers:viewer:\(followerToken)")
        let proxyTokens = try secretFile("proxy.tokens", "admin:operator:\(adminToken)")
        let followerTokenFile = try secretFile("follower.token", followerToken)
        // A loopback cluster started with dev's well-known admin token says so to its servers, which refuse it otherwise.
        let allowDevTokens = OperatorTokens.developmentSecrets.contains(adminToken) ? ["--allow-dev-tokens"] : []
        // Each process goes into the state file as soon as it runs, before it listens.
        func register(_ component: LocalClusterState.Component) throws {
            components.append(component)
            try save(followerToken: followerToken)
        }
        try await spawn(
            name: "control", kind: "control", port: basePort + 2,
            arguments: [
                "control", "--port", "\(basePort + 2)", "--database", "postgres://ordercell@127.0.0.1:\(controlDatabasePort)/ordercell_control",
                // Loopback PostgreSQL servers without certificates, as the cell services are told.
                "--database-tls", "disable",
            ] + (tls?.control ?? ["--cell-tls", "disable", "--http-tls", "disable"]) + [
                "--routing", routingFile, "--token-file", controlTokens,
            ] + allowDevTokens + [
                // The control plane follows each cell's Patroni leader in etcd.
                "--patroni-etcd", etcd.clientURLs,
                "--credential-key-file", credentialKey,
                "--notification-key-file", notificationKey,
            ],
            report: report, register: register
        )
        for cell in 1...cells {
            for (index, port) in cellServicePorts(cell).enumerated() {
                try await spawn(
                    name: "cell-\(cell)-service-\(index + 1)", kind: "cell", port: port,
                    arguments: [
                        "cell", "--cell", "\(cell)", "--port", "\(port)", "--control", controlURL,
                    ] + (tls?.cell ?? ["--cell-tls", "disable"]) + [
                        "--control-token-file", followerTokenFile,
                        "--postgres-tls", "disable",
                        "--routing-snapshot", "\(directory)/cell-\(cell)-\(port).routing.json",
                        // The notifier opens merchants' notification secrets with it.
                        "--notification-key-file", notificationKey,
                    ] + notifierArguments,
                    report: report, register: register, cell: cell
                )
            }
        }
        for port in [basePort, basePort + 1] {
            try await spawn(
                name: "proxy-\(port - basePort + 1)", kind: "proxy", port: port,
                arguments: [
                    "proxy", "--port", "\(port)", "--control", controlURL, "--control-token-file", followerTokenFile,
                ] + (tls?.proxies[port - basePort] ?? ["--cell-tls", "disable", "--http-tls", "disable"]) + [
                    "--token-file", proxyTokens,
                ] + allowDevTokens + [
                    "--routing-snapshot", "\(directory)/proxy-\(port - basePort + 1).routing.json",
                ] + (signedRequests ? ["--credential-key-file", credentialKey] : ["--unsigned-requests"]),
                report: report, register: register
            )
        }
        return try Self.state(in: directory)
    }

    /// Starts every cell's Patroni members and waits until each cell has a leader and a
    /// standby streaming from it (synchronous when `synchronousCommit` is on); returns
    /// each cell's leader. Member 1 of every new cell bootstraps it (initdb, the
    /// database `cell_N`), then member 2 clones it; a cell that ran before starts both
    /// members at once and Patroni elects whichever may lead.
    private func startCellStorage(report: (String) -> Void) async throws -> [Int: PatroniMember] {
        let allCells = Array(1...cells)
        let members = Dictionary(uniqueKeysWithValues: allCells.map { ($0, [patroniMember(cell: $0, member: 1), patroniMember(cell: $0, member: 2)]) })
        var started: [String: Int32] = [:]
        func start(_ member: PatroniMember) async throws {
            if let pid = member.runningProcessID {
                started[member.name] = pid
                return
            }
            started[member.name] = try await member.start()
        }
        /// Throws if a member started here has ended (Patroni refused its configuration, say).
        func checkAlive() throws {
            for cell in allCells {
                for member in members[cell]! {
                    if let pid = started[member.name], !LocalProcess.isRunning(pid, matching: member.processFragments) {
                        throw ValidationFailure("Patroni of \(member.name) exited during start-up; its log \(member.logFile) ends with:\n\(LocalProcess.tail(of: member.logFile))")
                    }
                }
            }
        }

        // Every cell's first member (and the second, if it has data), then a leader per cell.
        for cell in allCells {
            try await start(members[cell]![0])
            if members[cell]![1].isInitialized { try await start(members[cell]![1]) }
        }
        var leaders: [Int: PatroniMember] = [:]
        let clock = ContinuousClock()
        var deadline = clock.now.advanced(by: .seconds(120))
        while leaders.count < cells {
            try checkAlive()
            for cell in allCells where leaders[cell] == nil {
                for member in members[cell]! where started[member.name] != nil {
                    if await member.isPrimary() {
                        leaders[cell] = member
                        report("cell \(cell): \(member.name) leads, PostgreSQL on 127.0.0.1:\(member.postgresPort), Patroni on 127.0.0.1:\(member.apiPort)")
                        break
                    }
                }
            }
            if leaders.count == cells { break }
            guard clock.now < deadline else {
                let missing = allCells.filter { leaders[$0] == nil }.map { "cell-\($0)" }
                throw ValidationFailure("no Patroni leader within 120 s in \(missing.joined(separator: ", ")); see \(logs)/cell-N-m1.log")
            }
            try await Task.sleep(for: .milliseconds(250))
        }

        // The cells' settings as asked now (bootstrap wrote them only into a new cell's etcd keys).
        for cell in allCells {
            let leader = leaders[cell]!
            guard let current = await leader.dynamicConfiguration() else { continue }
            let wanted: [String: Bool] = [
                "synchronous_mode": patroniSettings.synchronousMode, "synchronous_mode_strict": patroniSettings.synchronousModeStrict,
            ]
            let changes = wanted.filter { key, value in (current[key] as? Bool) != value }
            if !changes.isEmpty {
                try await leader.patchConfiguration(changes)
                report("cell \(cell): Patroni configuration changed: \(changes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
            }
        }

        // The other members (cloned from the leader with pg_basebackup when new), then a streaming standby per cell.
        for cell in allCells {
            for member in members[cell]! where started[member.name] == nil { try await start(member) }
        }
        var replicating: Set<Int> = []
        deadline = clock.now.advanced(by: .seconds(240))
        while replicating.count < cells {
            try checkAlive()
            for cell in allCells where !replicating.contains(cell) {
                var view: PatroniClusterView?
                for member in members[cell]! where view == nil { view = await member.cluster() }
                guard let view, view.members.count == members[cell]!.count, view.isReplicating(synchronous: patroniSettings.synchronousMode) else { continue }
                // A failover while starting: follow whoever leads now.
                if let leader = view.leader, let member = members[cell]!.first(where: { $0.name == leader.name }) { leaders[cell] = member }
                replicating.insert(cell)
                for standby in view.standbys {
                    report("cell \(cell): \(standby.name) \(standby.role) \(standby.state), PostgreSQL on 127.0.0.1:\(standby.port ?? 0)")
                }
            }
            if replicating.count == cells { break }
            guard clock.now < deadline else {
                let missing = allCells.filter { !replicating.contains($0) }.map { "cell-\($0)" }
                throw ValidationFailure(
                    "no \(patroniSettings.synchronousMode ? "synchronous " : "")standby streaming within 240 s in \(missing.joined(separator: ", ")); see \(logs)/cell-N-m2.log"
                )
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        return leaders
    }

    /// Stops every process and server `up` started; the data stays. Cell
    /// services and proxies first, then each cell's standbys, then its leaders
    /// (so that no failover happens while stopping), then etcd, then the control database.
    public func down(report: (String) -> Void) async throws {
        guard let state = try? Self.state(in: directory) else {
            report("no cluster in \(directory)")
            return
        }
        let processes = state.components.filter { !["postgres", "etcd", "patroni"].contains($0.kind) }.reversed()
        for component in processes {
            if let pid = component.pid, kill(pid, 0) == 0 { kill(pid, SIGTERM) }
        }
        for component in processes {
            guard let pid = component.pid else { continue }
            for _ in 0..<100 where kill(pid, 0) == 0 { try await Task.sleep(for: .milliseconds(100)) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
            report("stopped \(component.name)")
        }

        // Patroni: standbys first, then leaders.
        let members = Self.patroniMembers(in: state)
        var leaderNames: Set<String> = []
        for cell in Set(members.map(\.cell)) {
            for member in members where member.cell == cell {
                if let view = await member.cluster() {
                    if let leader = view.leader { leaderNames.insert(leader.name) }
                    break
                }
            }
        }
        for leading in [false, true] {
            let group = members.filter { leaderNames.contains($0.name) == leading }
            let stopped = await withTaskGroup(of: String?.self) { tasks in
                for member in group {
                    tasks.addTask {
                        let running = member.runningProcessID != nil || member.postmasterProcessID != nil
                        await member.stop()
                        return running ? member.name : nil
                    }
                }
                var names: [String] = []
                for await name in tasks { if let name { names.append(name) } }
                return names.sorted()
            }
            for name in stopped { report("stopped \(name)\(leading ? " (leader)" : "")") }
        }

        // etcd, one member after the other: a leader stopping hands its leadership
        // over first, which takes seconds when the member it picks is stopping too.
        for component in state.components where component.kind == "etcd" {
            let fragments = ["etcd", component.dataDirectory ?? "--name"]
            let pids = LocalProcess.find(matching: fragments)
            guard !pids.isEmpty else { continue }
            await LocalProcess.terminate(pids, matching: fragments, timeout: .seconds(20))
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

    /// The Patroni members of the cluster a state file describes.
    public static func patroniMembers(in state: LocalClusterState) -> [PatroniMember] {
        let etcdHosts = state.components.filter { $0.kind == "etcd" }.map { "127.0.0.1:\($0.port)" }
        return state.components.compactMap { component in
            guard component.kind == "patroni", let cell = component.cell, let apiPort = component.apiPort, let dataDirectory = component.dataDirectory,
                let member = component.name.components(separatedBy: "-m").last.flatMap({ Int($0) })
            else { return nil }
            return PatroniMember(
                cell: cell, member: member, postgresPort: component.port, apiPort: apiPort, dataDirectory: dataDirectory,
                configDirectory: state.directory + "/patroni", logFile: component.log, etcdHosts: etcdHosts
            )
        }
    }

    /// The state file of the cluster in `directory`.
    public static func state(in directory: String) throws -> LocalClusterState {
        let path = URL(fileURLWithPath: directory).standardizedFileURL.path + "/cluster.json"
        return try JSONDecoder().decode(LocalClusterState.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// One line per component (running or not, and where), then one per cell:
    /// its leader, standbys, timeline and lag as Patroni sees them.
    public static func status(in directory: String) throws -> [String] {
        let state = try state(in: directory)
        let members = patroniMembers(in: state)
        var lines = state.components.map { component in
            var running = false
            var detail = ""
            switch component.kind {
            case "postgres":
                if let dataDirectory = component.dataDirectory {
                    let pid = PostgresServer(dataDirectory: dataDirectory, port: component.port).processID
                    running = pid.map { kill($0, 0) == 0 } ?? false
                }
            case "etcd":
                let pid = LocalProcess.find(matching: ["etcd", component.dataDirectory ?? "--name"]).first
                running = pid != nil
                detail = "  peer 127.0.0.1:\(component.port + 1)"
            case "patroni":
                let member = members.first { $0.name == component.name }
                running = member?.runningProcessID != nil
                if let member, !running, member.postmasterProcessID != nil { detail = "  (PostgreSQL runs without its Patroni)" }
                if let apiPort = component.apiPort { detail = "  Patroni 127.0.0.1:\(apiPort)" + detail }
            default:
                if let pid = component.pid { running = kill(pid, 0) == 0 }
            }
            let name = component.name.padding(toLength: 24, withPad: " ", startingAt: 0)
            return "\(name) \(running ? "running" : "stopped")  127.0.0.1:\(component.port)\(detail)  log \(component.log)"
        }
        for cell in Set(members.map(\.cell)).sorted() {
            let cellMembers = members.filter { $0.cell == cell }
            guard let view = cellMembers.lazy.compactMap({ $0.clusterBlocking() }).first else {
                lines.append("cell \(cell): Patroni does not answer (\(cellMembers.map(\.name).joined(separator: ", ")))")
                continue
            }
            var line = "cell \(cell): "
            if let leader = view.leader {
                line += "leader \(leader.name) 127.0.0.1:\(leader.port ?? 0) \(leader.state), timeline \(leader.timeline.map(String.init) ?? "?")"
            } else {
                line += "no leader"
            }
            for standby in view.standbys {
                line += "; \(standby.name) \(standby.role) \(standby.state)"
                if let timeline = standby.timeline, timeline != view.leader?.timeline { line += ", timeline \(timeline)" }
                line += ", lag \(standby.lag.map { "\($0) bytes" } ?? "unknown")"
            }
            if view.standbys.isEmpty { line += "; no standby" }
            lines.append(line)
        }
        return lines
    }

    // MARK: - Steps

    private func startControlDatabase(_ server: PostgresServer, database: String) async throws {
        let initialized = FileManager.default.fileExists(atPath: server.dataDirectory + "/PG_VERSION")
        if !initialized { try await server.initializePrimary(synchronousCommit: .off) }
        if !(await server.isAcceptingConnections()) { try await server.start() }
        if !initialized { try await createDatabase(database, on: server) }
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

    private func spawn(
        name: String, kind: String, port: Int, arguments: [String], report: (String) -> Void,
        register: (LocalClusterState.Component) throws -> Void, cell: Int? = nil
    ) async throws {
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
        try ProcessLaunch.run(process)
        try handle.close()
        try register(.init(name: name, kind: kind, port: port, pid: process.processIdentifier, log: log, cell: cell))
        try await Self.waitForPort(port, process: process, name: name, log: log)
        report("\(name): pid \(process.processIdentifier), 127.0.0.1:\(port)")
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
