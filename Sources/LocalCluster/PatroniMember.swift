import Foundation

/// The Patroni settings a local cluster's cells share: written to etcd by a
/// cell's first member when it bootstraps (`bootstrap.dcs`), changed later
/// through `PATCH /config`.
public struct PatroniSettings: Sendable, Equatable {
    /// Seconds the leader lock lives without renewal: how long a dead primary goes unnoticed.
    /// Patroni 4 raises anything below 20 to 20.
    public var ttl = 20
    /// Seconds between two runs of Patroni's loop.
    public var loopWait = 1
    /// How long an etcd or PostgreSQL hiccup is retried before the leader demotes itself
    /// (loop_wait + 2 × retry_timeout ≤ ttl).
    public var retryTimeout = 5
    /// An asynchronous replica further behind than this (bytes) is not promoted.
    public var maximumLagOnFailover = 1_048_576
    /// Only a synchronous standby may be promoted, and commits wait for it.
    public var synchronousMode = true
    /// Commits wait even when no standby is there (no write is ever acknowledged by the primary alone).
    public var synchronousModeStrict = false

    public init(synchronousMode: Bool = true, synchronousModeStrict: Bool = false) {
        self.synchronousMode = synchronousMode
        self.synchronousModeStrict = synchronousModeStrict
    }
}

/// One member of a cell's Patroni cluster on loopback: its PostgreSQL server
/// (`cell-N-mK`, scope `cell-N`) managed by Patroni, which takes the cell's
/// leader lock in etcd or follows the member holding it.
public struct PatroniMember: Sendable {
    public var cell: Int
    /// 1, 2, …: the member's number in its cell.
    public var member: Int
    public var postgresPort: Int
    /// Patroni's REST API.
    public var apiPort: Int
    public var dataDirectory: String
    /// Where the member's YAML, its post-bootstrap script and its pgpass file live.
    public var configDirectory: String
    /// Patroni's output and its PostgreSQL's.
    public var logFile: String
    /// etcd's client endpoints, `127.0.0.1:PORT`.
    public var etcdHosts: [String]
    public var namespace = "/ordercell/"
    public var settings: PatroniSettings
    /// The superuser (trust on 127.0.0.1); it owns the cell's database.
    public var superuser = "ordercell"

    public init(
        cell: Int, member: Int, postgresPort: Int, apiPort: Int, dataDirectory: String, configDirectory: String, logFile: String,
        etcdHosts: [String], settings: PatroniSettings = PatroniSettings()
    ) {
        self.cell = cell
        self.member = member
        self.postgresPort = postgresPort
        self.apiPort = apiPort
        self.dataDirectory = dataDirectory
        self.configDirectory = configDirectory
        self.logFile = logFile
        self.etcdHosts = etcdHosts
        self.settings = settings
    }

    public var scope: String { "cell-\(cell)" }
    public var name: String { "cell-\(cell)-m\(member)" }
    public var database: String { "cell_\(cell)" }
    public var configFile: String { "\(configDirectory)/\(name).yml" }
    var postBootstrapScript: String { "\(configDirectory)/\(scope)-post-bootstrap.sh" }
    var pgpassFile: String { "\(configDirectory)/\(name).pgpass" }

    /// The Patroni executable: `ORDERCELL_PATRONI`, else the venv `scripts/test` installs.
    public static var executable: String {
        get throws {
            let path = ProcessInfo.processInfo.environment["ORDERCELL_PATRONI"] ?? "/opt/ordercell-patroni/bin/patroni"
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw LocalClusterError(
                    "Patroni is not installed at \(path): scripts/test installs Patroni 4.1.5 from PyPI into /opt/ordercell-patroni "
                        + "(with etcd and Patroni's Python dependencies from Debian), or set ORDERCELL_PATRONI to a patroni ≥ 4"
                )
            }
            return path
        }
    }

    /// Checks the Patroni executable once: present, and not a 3.x (Debian's 3.0.2 can lose
    /// acknowledged writes after a frozen leader; 3.0.x after a restart on an orphaned primary).
    public static func checkExecutable() async throws -> String {
        let path = try executable
        let output = try await Command.run([path, "--version"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let version = output.split(separator: " ").last.map(String.init) ?? output
        guard let major = Int(version.split(separator: ".").first ?? ""), major >= 4 else {
            throw LocalClusterError("\(path) is \(output); OrderCell's cells need Patroni ≥ 4 (scripts/test installs 4.1.5 into /opt/ordercell-patroni)")
        }
        return output
    }

    /// The member's YAML. PostgreSQL's settings are those of a cell primary
    /// before Patroni (`PostgresServer.initializePrimary`), in the DCS section
    /// so every member has the same; `synchronous_standby_names` is Patroni's.
    public func configuration(binDirectory: String) -> String {
        func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
        return """
            # Written by `ordercell cluster up`; Patroni regenerates postgresql.conf and pg_hba.conf from it.
            scope: \(quoted(scope))
            namespace: \(quoted(namespace))
            name: \(quoted(name))

            log:
              level: INFO
              format: '%(asctime)s %(levelname)s: %(message)s'

            restapi:
              listen: 127.0.0.1:\(apiPort)
              connect_address: 127.0.0.1:\(apiPort)

            etcd3:
              hosts: \(quoted(etcdHosts.joined(separator: ",")))
              protocol: http

            bootstrap:
              dcs:
                ttl: \(settings.ttl)
                loop_wait: \(settings.loopWait)
                retry_timeout: \(settings.retryTimeout)
                maximum_lag_on_failover: \(settings.maximumLagOnFailover)
                synchronous_mode: \(settings.synchronousMode)
                synchronous_mode_strict: \(settings.synchronousModeStrict)
                synchronous_node_count: 1
                failsafe_mode: true
                check_timeline: true
                postgresql:
                  use_pg_rewind: true
                  use_slots: true
                  parameters:
                    wal_level: replica
                    hot_standby: 'on'
                    hot_standby_feedback: 'on'
                    wal_log_hints: 'on'
                    max_wal_senders: 10
                    max_replication_slots: 10
                    wal_keep_size: 256MB
                    fsync: 'on'
                    synchronous_commit: 'on'
                    max_connections: 200
                    shared_buffers: 64MB
                    log_min_messages: warning
              initdb:
                - encoding: UTF8
                - no-locale
                - auth: trust
              post_bootstrap: \(quoted(postBootstrapScript))

            postgresql:
              listen: 127.0.0.1:\(postgresPort)
              connect_address: 127.0.0.1:\(postgresPort)
              data_dir: \(quoted(dataDirectory))
              bin_dir: \(quoted(binDirectory))
              pgpass: \(quoted(pgpassFile))
              authentication:
                superuser:
                  username: \(quoted(superuser))
                replication:
                  username: replicator
                rewind:
                  username: rewinder
              parameters:
                unix_socket_directories: ''
              pg_hba:
                - host all all 127.0.0.1/32 trust
                - host replication all 127.0.0.1/32 trust
              pg_ctl_timeout: 60
              basebackup:
                - checkpoint: fast

            # No /dev/watchdog on a development machine; the leader lock's expiry fences.
            watchdog:
              mode: 'off'

            tags:
              nofailover: false
              noloadbalance: false
              clonefrom: false
              nosync: false

            """
    }

    /// Writes the member's YAML and its cell's post-bootstrap script (which creates
    /// the cell's database, owned by the superuser) and readies the data directory.
    public func prepare() async throws {
        let binDirectory = try Self.postgresBinDirectory()
        try FileManager.default.createDirectory(atPath: configDirectory, withIntermediateDirectories: true)
        try Data(configuration(binDirectory: binDirectory).utf8).write(to: URL(fileURLWithPath: configFile))
        let script = """
            #!/bin/sh
            # Patroni runs this once, on the member that bootstraps cell \(cell), with a connection string as $1.
            set -e
            exec '\(binDirectory)/psql' -v ON_ERROR_STOP=1 "$1" -c 'CREATE DATABASE \(database) OWNER \(superuser)'

            """
        try Data(script.utf8).write(to: URL(fileURLWithPath: postBootstrapScript))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: postBootstrapScript)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: configFile)
        if !FileManager.default.fileExists(atPath: logFile) { _ = FileManager.default.createFile(atPath: logFile, contents: nil) }
        if Command.isRoot {
            // Patroni runs as the PostgreSQL user: it writes its pgpass beside the YAML, and its log.
            try await Command.run(["chown", "\(Command.postgresUser):\(Command.postgresUser)", configDirectory, logFile])
        }
        try await Command.preparePostgresDirectory(dataDirectory)
    }

    /// The directory of PostgreSQL's server binaries (Patroni's `bin_dir`; it runs initdb,
    /// pg_ctl, pg_controldata, pg_basebackup, pg_rewind and postgres from there): where
    /// `Command.postgresTool` finds them, symbolic links followed (a PATH directory may
    /// hold links to some of them only).
    public static func postgresBinDirectory() throws -> String {
        let needed = ["postgres", "pg_ctl", "initdb", "pg_controldata", "pg_basebackup", "pg_rewind", "psql"]
        for tool in ["pg_ctl", "pg_controldata", "pg_rewind"] {
            let path = Command.postgresTool(tool)
            guard path.hasPrefix("/") else { continue }
            let directory = URL(fileURLWithPath: path).resolvingSymlinksInPath().deletingLastPathComponent().path
            if needed.allSatisfy({ FileManager.default.isExecutableFile(atPath: "\(directory)/\($0)") }) { return directory }
        }
        throw LocalClusterError(
            "no directory with PostgreSQL's server binaries (\(needed.joined(separator: ", "))): apt-get install postgresql (scripts/test does)"
        )
    }

    /// Whether the member's data directory holds a PostgreSQL cluster (it bootstrapped or was cloned before).
    public var isInitialized: Bool { FileManager.default.fileExists(atPath: dataDirectory + "/PG_VERSION") }

    /// What identifies this member's Patroni process: its YAML on the command line.
    public var processFragments: [String] { ["patroni", configFile] }

    /// The pid of this member's Patroni, if it runs.
    public var runningProcessID: Int32? { LocalProcess.find(matching: processFragments).first }

    /// The pid of the PostgreSQL server in the member's data directory, if one runs.
    public var postmasterProcessID: Int32? {
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
            let pid = text.split(separator: "\n").first.flatMap({ Int32($0) }),
            LocalProcess.isRunning(pid, matching: ["postgres"])
        else { return nil }
        return pid
    }

    /// Starts Patroni for this member in the background (as the PostgreSQL user when root)
    /// and returns its pid; Patroni then bootstraps, clones or starts the member's server.
    /// A server left running in the data directory without its Patroni is stopped first.
    public func start() async throws -> Int32 {
        let executable = try Self.executable
        try await prepare()
        if postmasterProcessID != nil { try? await stopOrphanPostmaster() }
        for port in [postgresPort, apiPort] where TCPProbe.accepts(port: port) {
            throw LocalClusterError("\(name): port \(port) is already in use")
        }
        return try await LocalProcess.startDetached([executable, configFile], log: logFile, asPostgresUser: true)
    }

    /// Stops the member: SIGTERM to Patroni (it stops PostgreSQL, releases the leader
    /// lock if it holds it, and leaves), SIGKILL after `timeout`; then a server
    /// left running in the data directory (Patroni ended during a clone) is stopped too.
    public func stop(timeout: Duration = .seconds(90)) async {
        await LocalProcess.terminate(LocalProcess.find(matching: processFragments), matching: processFragments, timeout: timeout)
        if postmasterProcessID != nil { try? await stopOrphanPostmaster() }
    }

    private func stopOrphanPostmaster() async throws {
        try await Command.runPostgresTool([Command.postgresTool("pg_ctl"), "-D", dataDirectory, "-m", "fast", "-w", "-t", "60", "stop"])
    }

    // MARK: - REST API

    /// `GET /cluster` from this member's REST API: every member of the cell, by Patroni.
    public func cluster(timeout: Duration = .seconds(2)) async -> PatroniClusterView? {
        guard let response = await LoopbackHTTP.send(port: apiPort, path: "/cluster", timeout: timeout), response.status == 200 else { return nil }
        return try? JSONDecoder().decode(PatroniClusterView.self, from: response.body)
    }

    /// `cluster()`, blocking (for `ordercell cluster status`).
    public func clusterBlocking(timeout: Duration = .seconds(2)) -> PatroniClusterView? {
        guard let response = LoopbackHTTP.sendBlocking(port: apiPort, path: "/cluster", timeout: timeout), response.status == 200 else { return nil }
        return try? JSONDecoder().decode(PatroniClusterView.self, from: response.body)
    }

    /// Whether this member is the cell's writable primary (`GET /primary` answers 200).
    public func isPrimary(timeout: Duration = .seconds(2)) async -> Bool {
        await LoopbackHTTP.send(port: apiPort, path: "/primary", timeout: timeout)?.status == 200
    }

    /// The cell's dynamic configuration in etcd (`GET /config`), as JSON.
    public func dynamicConfiguration() async -> [String: Any]? {
        guard let response = await LoopbackHTTP.send(port: apiPort, path: "/config"), response.status == 200 else { return nil }
        return (try? JSONSerialization.jsonObject(with: response.body)) as? [String: Any]
    }

    /// Changes the cell's dynamic configuration (`PATCH /config`, a JSON merge).
    public func patchConfiguration(_ changes: [String: Any]) async throws {
        let body = try JSONSerialization.data(withJSONObject: changes)
        guard let response = await LoopbackHTTP.send("PATCH", port: apiPort, path: "/config", body: body, timeout: .seconds(10)), response.status == 200 else {
            throw LocalClusterError("\(name): PATCH /config \(String(decoding: body, as: UTF8.self)) failed")
        }
    }
}

/// Patroni's `GET /cluster`: the members of one cell as Patroni sees them.
public struct PatroniClusterView: Sendable, Decodable {
    public struct Member: Sendable, Decodable {
        public var name: String
        /// `leader`, `sync_standby`, `replica` (asynchronous or not yet synchronous), `standby_leader`.
        public var role: String
        /// `running`, `streaming`, `stopped`, `starting`, `creating replica`, `crashed`, ….
        public var state: String
        public var host: String?
        public var port: Int?
        public var timeline: Int?
        /// Bytes behind the leader; nil on the leader or when Patroni says `unknown`.
        public var lag: Int?

        enum CodingKeys: String, CodingKey { case name, role, state, host, port, timeline, lag }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name)
            role = try container.decode(String.self, forKey: .role)
            state = try container.decodeIfPresent(String.self, forKey: .state) ?? "unknown"
            host = try container.decodeIfPresent(String.self, forKey: .host)
            port = try container.decodeIfPresent(Int.self, forKey: .port)
            timeline = try? container.decodeIfPresent(Int.self, forKey: .timeline)
            lag = try? container.decodeIfPresent(Int.self, forKey: .lag)
        }
    }

    public var members: [Member]

    /// The member holding the leader lock.
    public var leader: Member? { members.first { $0.role == "leader" || $0.role == "standby_leader" } }
    /// The other members.
    public var standbys: [Member] { members.filter { $0.role != "leader" && $0.role != "standby_leader" } }
    /// A leader running and a standby streaming from it — synchronous (named in Patroni's sync key) when `synchronous`.
    public func isReplicating(synchronous: Bool) -> Bool {
        guard let leader, leader.state == "running" else { return false }
        return standbys.contains { $0.state == "streaming" && (synchronous ? $0.role == "sync_standby" : true) }
    }
}
