import OrderCellPlatform
import CellRouting
import Foundation
import Logging
import OrderModel
import PostgresNIO
import ServiceLifecycle

/// Routing releases in the cluster's PostgreSQL control database.
///
/// A `Service`: its connections live in ``run()``, which returns on
/// graceful shutdown, cancellation or ``close()`` once they are closed.
/// ``prepare()`` (with `run()` running) creates or updates the table.
public final class PostgresRoutingReleaseStore: RoutingReleaseStore, Service {
    private let client: PostgresClient
    private let logger: Logger
    private let timeout: Duration
    private let closing = AsyncStream<Never>.makeStream()

    /// - Parameters:
    ///   - tls: TLS to the control database (`disable` for loopback development only).
    ///   - timeout: the client-side deadline of every call; the server's `statement_timeout` is 80 % of it.
    public init(endpoint: PostgresEndpoint, tls: PostgresTLSMode, logger: Logger, timeout: Duration = .seconds(5)) {
        var configuration = PostgresClient.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.username, password: endpoint.password,
            database: endpoint.database, tls: tls.clientTLS
        )
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(timeout.wholeMilliseconds * 4 / 5)"), ("application_name", "ordercell-control"),
        ]
        configuration.options.maximumConnections = 4
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.logger = logger
        self.timeout = timeout
    }

    /// Runs the connection pool until a graceful shutdown, cancellation or ``close()``.
    public func run() async {
        let (client, closed) = (self.client, closing.stream)
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await client.run() }
                for await _ in closed {}
                group.cancelAll()
            }
        }
    }

    /// Ends ``run()``.
    public func close() { closing.continuation.finish() }

    /// Creates the releases table, or adds what an older version lacks.
    public func prepare() async throws {
        let (client, logger) = (self.client, self.logger)
        _ = try await withDeadline(timeout) {
            try await client.query(
                """
                CREATE TABLE IF NOT EXISTS routing_releases (
                    version BIGINT PRIMARY KEY,
                    document TEXT NOT NULL,
                    author TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """,
                logger: logger
            )
            // ALTER TABLE takes an exclusive lock even when the column exists: only when it is missing,
            // so that a start behind a long reader (a dump, the process being replaced) does not wait on it.
            var hasColumn = false
            for try await _ in try await client.query(
                "SELECT 1 FROM information_schema.columns WHERE table_name = 'routing_releases' AND column_name = 'rolled_back_to'",
                logger: logger
            ) {
                hasColumn = true
            }
            if !hasColumn {
                try await client.query("ALTER TABLE routing_releases ADD COLUMN IF NOT EXISTS rolled_back_to BIGINT", logger: logger)
            }
        }
    }

    public func latest() async throws -> RoutingRelease? {
        try await fetch("SELECT document, author, reason, created_at, rolled_back_to FROM routing_releases ORDER BY version DESC LIMIT 1")
    }

    public func release(_ version: UInt64) async throws -> RoutingRelease? {
        try await fetch(
            "SELECT document, author, reason, created_at, rolled_back_to FROM routing_releases WHERE version = \(Int64(clamping: version))"
        )
    }

    private func fetch(_ query: PostgresQuery) async throws -> RoutingRelease? {
        let client = self.client
        let logger = self.logger
        return try await withDeadline(timeout) {
            let rows = try await client.query(query, logger: logger)
            for try await (document, author, reason, createdAt, rolledBackTo) in rows.decode((String, String, String, Date, Int64?).self) {
                return RoutingRelease(
                    table: try RoutingRelease.decodeTable(document), author: author, reason: reason, createdAt: createdAt,
                    rolledBackTo: rolledBackTo.map(UInt64.init)
                )
            }
            return nil
        }
    }

    public func history(limit: Int) async throws -> [RoutingReleaseSummary] {
        let client = self.client
        let logger = self.logger
        return try await withDeadline(timeout) {
            var result: [RoutingReleaseSummary] = []
            let rows = try await client.query(
                "SELECT version, author, reason, created_at, rolled_back_to FROM routing_releases ORDER BY version DESC LIMIT \(limit)",
                logger: logger
            )
            for try await (version, author, reason, createdAt, rolledBackTo) in rows.decode((Int64, String, String, Date, Int64?).self) {
                result.append(
                    RoutingReleaseSummary(
                        version: UInt64(version), author: author, reason: reason, createdAt: createdAt, rolledBackTo: rolledBackTo.map(UInt64.init)
                    )
                )
            }
            return result
        }
    }

    public func publish(_ release: RoutingRelease) async throws {
        let client = self.client
        let logger = self.logger
        let document = try RoutingRelease.encodeTable(release.table)
        let version = Int64(release.version)
        let rolledBackTo = release.rolledBackTo.map { Int64($0) }
        let (author, reason) = (release.author, release.reason)
        try await withDeadline(timeout) {
            let rows = try await client.query(
                """
                INSERT INTO routing_releases (version, document, author, reason, rolled_back_to)
                SELECT \(version), \(document), \(author), \(reason), \(rolledBackTo)
                WHERE \(version) = COALESCE((SELECT max(version) FROM routing_releases), 0) + 1
                ON CONFLICT (version) DO NOTHING
                RETURNING version
                """,
                logger: logger
            )
            var inserted = false
            for try await _ in rows { inserted = true }
            if !inserted {
                var current: Int64 = 0
                for try await value in try await client.query("SELECT COALESCE(max(version), 0) FROM routing_releases", logger: logger).decode(Int64.self) {
                    current = value
                }
                throw RoutingPublishError.staleVersion(expected: release.version - 1, current: UInt64(current))
            }
        }
    }
}
