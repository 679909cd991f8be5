import Foundation

/// One member of a local etcd cluster (Debian's etcd 3.4) on loopback: the
/// store Patroni keeps each cell's leader lock and membership in.
public struct EtcdServer: Sendable {
    /// The member's name, `e1`, `e2`, ….
    public var name: String
    public var dataDirectory: String
    public var clientPort: Int
    public var peerPort: Int
    /// Every member, `e1=http://127.0.0.1:PEER,…` (etcd's `--initial-cluster`).
    public var initialCluster: String
    public var logFile: String
    public var clusterToken = "ordercell-etcd"

    public init(name: String, dataDirectory: String, clientPort: Int, peerPort: Int, initialCluster: String, logFile: String) {
        self.name = name
        self.dataDirectory = dataDirectory
        self.clientPort = clientPort
        self.peerPort = peerPort
        self.initialCluster = initialCluster
        self.logFile = logFile
    }

    public var clientURL: String { "http://127.0.0.1:\(clientPort)" }
    public var peerURL: String { "http://127.0.0.1:\(peerPort)" }

    /// The etcd executable: `ORDERCELL_ETCD`, else `etcd` on PATH or /usr/bin/etcd.
    public static var executable: String {
        get throws {
            if let path = ProcessInfo.processInfo.environment["ORDERCELL_ETCD"] {
                guard FileManager.default.isExecutableFile(atPath: path) else { throw LocalClusterError("ORDERCELL_ETCD=\(path) is not an executable") }
                return path
            }
            for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") + ["/usr/bin"] {
                let candidate = "\(directory)/etcd"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
            throw LocalClusterError("etcd is not installed: scripts/test installs it (apt-get install etcd-server etcd-client)")
        }
    }

    /// Whether the member has run before (its data directory holds a member): it
    /// then rejoins with `--initial-cluster-state existing`.
    public var isInitialized: Bool { FileManager.default.fileExists(atPath: dataDirectory + "/member") }

    /// etcd's command line. Heartbeat 100 ms and election 1 s (loopback);
    /// periodic auto-compaction, since Patroni writes a few keys per second per cell.
    public func arguments(executable: String) -> [String] {
        [
            executable, "--name", name, "--data-dir", dataDirectory,
            "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
            "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
            "--initial-cluster", initialCluster, "--initial-cluster-state", isInitialized ? "existing" : "new",
            "--initial-cluster-token", clusterToken,
            "--heartbeat-interval", "100", "--election-timeout", "1000",
            "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "5m",
            "--quota-backend-bytes", "1073741824", "--enable-v2=false",
            "--logger", "zap", "--log-outputs", "stderr",
        ]
    }

    /// What identifies this member's process: its data directory on the command line.
    public var processFragments: [String] { ["etcd", dataDirectory] }

    /// The pid of this member's etcd, if it runs.
    public var runningProcessID: Int32? { LocalProcess.find(matching: processFragments).first }

    /// Starts the member in the background (it waits for its peers to form the cluster) and returns its pid.
    public func start() async throws -> Int32 {
        let executable = try Self.executable
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return try await LocalProcess.startDetached(arguments(executable: executable), log: logFile)
    }

    /// Whether the member answers healthy (it has a leader and serves reads).
    public func isHealthy() async -> Bool {
        guard let response = await LoopbackHTTP.send(port: clientPort, path: "/health", timeout: .seconds(2)) else { return false }
        return response.status == 200 && response.text.contains(#""health":"true""#)
    }

    /// Stops the member: SIGTERM, then SIGKILL after `timeout`.
    public func stop(timeout: Duration = .seconds(20)) async {
        await LocalProcess.terminate(LocalProcess.find(matching: processFragments), matching: processFragments, timeout: timeout)
    }
}

/// A local etcd cluster of three members on loopback: names e1…e3, data in
/// `<directory>/e<i>`, client port `clientPorts[i]` and peer port one above.
public struct EtcdCluster: Sendable {
    public var members: [EtcdServer]

    public init(directory: String, logDirectory: String, clientPorts: [Int]) {
        let names = clientPorts.indices.map { "e\($0 + 1)" }
        let initialCluster = zip(names, clientPorts).map { "\($0)=http://127.0.0.1:\($1 + 1)" }.joined(separator: ",")
        members = zip(names, clientPorts).map { name, port in
            EtcdServer(
                name: name, dataDirectory: "\(directory)/\(name)", clientPort: port, peerPort: port + 1, initialCluster: initialCluster,
                logFile: "\(logDirectory)/etcd-\(name).log"
            )
        }
    }

    /// The client URLs, comma-separated (`--patroni-etcd` of the control plane).
    public var clientURLs: String { members.map(\.clientURL).joined(separator: ",") }
    /// `127.0.0.1:PORT,…` (Patroni's `etcd3.hosts`).
    public var hosts: [String] { members.map { "127.0.0.1:\($0.clientPort)" } }

    /// Starts the members that do not run (all at once: a lone member waits for its peers)
    /// and waits until every member is healthy. Returns each member's pid.
    public func start(timeout: Duration = .seconds(60), report: (String) -> Void) async throws -> [Int32] {
        var pids: [Int32] = []
        for member in members {
            if let pid = member.runningProcessID {
                pids.append(pid)
                report("etcd \(member.name): running, pid \(pid), \(member.clientURL)")
                continue
            }
            if TCPProbe.accepts(port: member.clientPort) || TCPProbe.accepts(port: member.peerPort) {
                throw LocalClusterError("etcd \(member.name): port \(member.clientPort) or \(member.peerPort) is already in use")
            }
            pids.append(try await member.start())
        }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        for (member, pid) in zip(members, pids) {
            while !(await member.isHealthy()) {
                guard LocalProcess.isRunning(pid, matching: member.processFragments) else {
                    throw LocalClusterError("etcd \(member.name) exited during start-up; its log \(member.logFile) ends with:\n\(LocalProcess.tail(of: member.logFile))")
                }
                guard ContinuousClock.now < deadline else {
                    throw LocalClusterError("etcd \(member.name) was not healthy within \(timeout); see \(member.logFile)")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            report("etcd \(member.name): pid \(pid), \(member.clientURL)")
        }
        return pids
    }

    /// Stops the members one after the other (a leader stopping hands its leadership
    /// over first, which takes seconds when the member it picks is stopping too).
    public func stop(timeout: Duration = .seconds(20)) async {
        for member in members { await member.stop(timeout: timeout) }
    }
}
