import CellRouting
import CellStorage
import Foundation
import LocalCluster
import Logging
import OrderCellPlatform
import PostgresNIO
import Testing

/// A PostgreSQL primary with a synchronous streaming replica, started in a
/// temporary directory for the duration of a suite.
struct PostgresTestServers: Sendable {
    let directory: String
    let primary: PostgresServer
    let replica: PostgresServer

    @TaskLocal static var current: PostgresTestServers?

    static func start() async throws -> PostgresTestServers {
        let initdb = Command.postgresTool("initdb")
        try #require(
            FileManager.default.isExecutableFile(atPath: initdb),
            "PostgreSQL server tools are not installed; scripts/test installs them (apt-get install postgresql)"
        )
        // A free port can be taken by another suite between finding it and the
        // server binding it (initdb and the base backup take seconds): start
        // again on new ports, up to three times.
        var attempt = 1
        while true {
            let directory = "/tmp/ordercell-test-pg-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let servers = PostgresTestServers(
                directory: directory,
                primary: PostgresServer(dataDirectory: directory + "/primary", port: try FreePort.find()),
                replica: PostgresServer(dataDirectory: directory + "/replica", port: try FreePort.find())
            )
            do {
                try await servers.primary.initializePrimary(synchronousCommit: .anyOneStandby)
                try await servers.primary.start()
                try await servers.replica.initializeReplica(of: servers.primary, name: "replica1")
                try await servers.replica.start()
                return servers
            } catch where attempt < 3 {
                await servers.stop()
                attempt += 1
            }
        }
    }

    func stop() async {
        try? await replica.stop(mode: "immediate")
        try? await primary.stop(mode: "immediate")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A new, empty database on the primary (replicated to the replica).
    func makeDatabase() async throws -> PostgresCellConfiguration {
        let name = "cell_\(UUID().uuidString.prefix(8).lowercased())"
        try await Command.runPostgresTool([
            Command.postgresTool("psql"), "-h", "127.0.0.1", "-p", "\(primary.port)", "-U", primary.user, "-d", "postgres",
            "-v", "ON_ERROR_STOP=1", "-c", "CREATE DATABASE \(name)",
        ])
        return PostgresCellConfiguration(
            primary: PostgresEndpoint(host: "127.0.0.1", port: primary.port, database: name, username: primary.user),
            replicas: [PostgresEndpoint(host: "127.0.0.1", port: replica.port, database: name, username: primary.user)],
            tls: .disable, maximumConnections: 8, minimumConnections: 0, callTimeout: .seconds(30), statementTimeout: .seconds(5)
        )
    }
}

/// Starts the PostgreSQL servers once around a whole suite.
struct PostgresServersTrait: SuiteTrait, TestScoping {
    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let servers = try await PostgresTestServers.start()
        do {
            try await PostgresTestServers.$current.withValue(servers) { try await function() }
        } catch {
            await servers.stop()
            throw error
        }
        await servers.stop()
    }
}

extension Trait where Self == PostgresServersTrait {
    /// Runs the suite with a PostgreSQL primary and replica of its own.
    static var postgresServers: Self { PostgresServersTrait() }
}
