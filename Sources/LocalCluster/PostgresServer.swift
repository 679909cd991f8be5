import Foundation

/// One local PostgreSQL server (primary or streaming replica) in a data
/// directory of its own, listening on loopback. What `ordercell cluster`
/// and the tests start.
public struct PostgresServer: Sendable {
    public var dataDirectory: String
    public var port: Int
    /// The superuser the cluster is initialised with (trust auth on loopback only).
    public var user: String

    public init(dataDirectory: String, port: Int, user: String = "ordercell") {
        self.dataDirectory = dataDirectory
        self.port = port
        self.user = user
    }

    /// The server log, inside the data directory (the PostgreSQL user owns it).
    public var logFile: String { dataDirectory + "/server.log" }

    /// Synchronous replication: how many standbys must confirm a commit.
    public enum SynchronousCommit: Sendable, Equatable {
        /// Commits wait for no standby (asynchronous replication).
        case off
        /// Commits wait until any one standby has flushed them (the default for cells).
        case anyOneStandby
    }

    /// Creates a new primary: `initdb`, loopback-only trust authentication,
    /// settings for streaming replication.
    public func initializePrimary(synchronousCommit: SynchronousCommit = .anyOneStandby) async throws {
        try await Command.preparePostgresDirectory(dataDirectory)
        try await Command.runPostgresTool([
            Command.postgresTool("initdb"), "-D", dataDirectory, "-U", user, "--auth=trust", "-E", "UTF8", "--no-locale",
            "--no-instructions",
        ])
        var settings = """

            # OrderCell cell primary
            listen_addresses = '127.0.0.1'
            port = \(port)
            unix_socket_directories = ''
            wal_level = replica
            max_wal_senders = 10
            max_replication_slots = 10
            hot_standby = on
            hot_standby_feedback = on
            wal_keep_size = '256MB'
            fsync = on
            synchronous_commit = on
            max_connections = 200
            shared_buffers = '64MB'
            log_min_messages = warning

            """
        if synchronousCommit == .anyOneStandby {
            settings += "synchronous_standby_names = 'ANY 1 (*)'\n"
        }
        try await append(settings, to: dataDirectory + "/postgresql.conf")
        try await append("host replication all 127.0.0.1/32 trust\n", to: dataDirectory + "/pg_hba.conf")
    }

    /// Creates a streaming replica of `primary` with `pg_basebackup`.
    public func initializeReplica(of primary: PostgresServer, name: String) async throws {
        try await Command.preparePostgresDirectory(dataDirectory)
        try await Command.runPostgresTool([
            Command.postgresTool("pg_basebackup"), "-h", "127.0.0.1", "-p", "\(primary.port)", "-U", primary.user,
            "-D", dataDirectory, "-X", "stream", "-R", "--checkpoint=fast",
        ])
        try await append(
            "\nport = \(port)\nprimary_conninfo = 'host=127.0.0.1 port=\(primary.port) user=\(primary.user) application_name=\(name)'\n",
            to: dataDirectory + "/postgresql.auto.conf"
        )
    }

    /// Starts the server and waits until it accepts connections.
    public func start() async throws {
        try await Command.runPostgresTool([
            Command.postgresTool("pg_ctl"), "-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "start",
        ])
    }

    /// Stops the server: `fast` ends sessions and checkpoints; `immediate` is a crash stop.
    public func stop(mode: String = "fast") async throws {
        try await Command.runPostgresTool([Command.postgresTool("pg_ctl"), "-D", dataDirectory, "-m", mode, "-w", "stop"])
    }

    /// The postmaster's process id, if the server runs.
    public var processID: Int32? {
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
            let first = text.split(separator: "\n").first
        else { return nil }
        return Int32(first)
    }

    /// Whether the server answers on its port.
    public func isAcceptingConnections() async -> Bool {
        (try? await Command.runPostgresTool([Command.postgresTool("pg_isready"), "-h", "127.0.0.1", "-p", "\(port)", "-t", "2"])) != nil
    }

    private func append(_ text: String, to path: String) async throws {
        if Command.isRoot {
            try await Command.run(["sh", "-c", "cat >> '\(path)' <<'ORDERCELL_EOF'\n\(text)\nORDERCELL_EOF"])
        } else {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(text.utf8))
            try handle.close()
        }
    }
}
