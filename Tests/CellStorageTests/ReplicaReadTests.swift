import CellStorage
import Foundation
import LocalCluster
import Logging
import OrderModel
import Testing

/// Eventual reads on a real streaming replica: served by it while it keeps
/// up, taken away from it when it lags.
@Suite("Replica reads", .postgresServers)
struct ReplicaReadTests {
    @Test("a cell's storage never switches onto a standby: a stale route naming one is refused, and the cell stays on its primary")
    func aStandbyIsNeverWrittenTo() async throws {
        let servers = try #require(PostgresTestServers.current)
        let configuration = try await servers.makeDatabase()
        let standby = try #require(configuration.replicas.first)
        var logger = Logger(label: "ordercell.test.following")
        logger.logLevel = .error
        let store = FollowingPostgresStore(configuration, logger: logger)
        let running = Task { await store.run() }
        defer { running.cancel() }
        try await store.migrate()
        // Refused by the store's recovery check, and by the migration's writes were the check gone.
        await #expect(throws: (any Error).self) { try await store.follow(primary: standby, replicas: []) }
        #expect(store.primary == configuration.primary)
        #expect(try await !store.store.primaryIsInRecovery())
    }

    @Test func aLaggingReplicaIsTakenOutOfReads() async throws {
        let servers = try #require(PostgresTestServers.current)
        var configuration = try await servers.makeDatabase()
        configuration.maximumReplicaLag = .milliseconds(300)
        var logger = Logger(label: "ordercell.test.replica")
        logger.logLevel = .error
        try await PostgresOrderStore.withStore(configuration, logger: logger) { store in
            let now = Timestamp(secondsSinceEpoch: 1_795_301_599)
            let order = Order(
                id: try OrderID(cell: CellID(1)!, createdAt: now, sequence: 1), merchantID: "m", outTradeNo: "lag-1", amount: 100,
                currency: Currency(code: "USD")!, description: nil, createdAt: now, expiresAt: now.adding(seconds: 600)
            )
            _ = try await store.insert(order)
            // The replica catches up and is measured fresh.
            try await waitUntil { store.replicaLag.first?.lag.map { $0 < .milliseconds(300) } ?? false }

            // Replay stops on the replica: it receives WAL but no longer applies it.
            try await psql(servers.replica, database: configuration.primary.database, "SELECT pg_wal_replay_pause()")
            _ = try await store.apply(.pay(paymentID: "p", amount: 100, keyClaimed: true), to: order.id, now: now)
            try await waitUntil { store.replicaLag.first?.lag.map { $0 > .milliseconds(300) } ?? false }
            // The replica still has the unpaid order; an eventual read must not return it.
            #expect(try await store.order(order.id, consistency: .eventual)?.status == .paid)

            try await psql(servers.replica, database: configuration.primary.database, "SELECT pg_wal_replay_resume()")
            try await waitUntil { store.replicaLag.first?.lag.map { $0 < .milliseconds(300) } ?? false }
            #expect(try await store.order(order.id, consistency: .eventual)?.status == .paid)
        }
    }

    func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<200 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("condition not met within 10 s")
    }

    func psql(_ server: PostgresServer, database: String, _ sql: String) async throws {
        try await Command.runPostgresTool([
            Command.postgresTool("psql"), "-h", "127.0.0.1", "-p", "\(server.port)", "-U", server.user, "-d", database,
            "-v", "ON_ERROR_STOP=1", "-c", sql,
        ])
    }
}
