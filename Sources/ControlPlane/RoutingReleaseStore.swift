import AsyncDeadline
import CellRouting
import Foundation
import Logging
import PostgresNIO

/// One published version of the routing table, with who published it and why.
public struct RoutingRelease: Sendable, Equatable {
    public var table: RoutingTable
    public var author: String
    public var reason: String
    public var createdAt: Date
}

/// Why a routing change was refused.
public enum RoutingPublishError: Error, Equatable, CustomStringConvertible {
    /// Someone published a newer version first; read it and try again.
    case staleVersion(expected: UInt64, current: UInt64)

    public var description: String {
        switch self {
        case .staleVersion(let expected, let current):
            return "the change was made against version \(expected) but version \(current) is current"
        }
    }
}

/// The control database: immutable, numbered routing releases in PostgreSQL.
///
/// A release is only ever inserted; its version is the primary key, so two
/// operators changing the same version concurrently cannot both win.
public final class PostgresRoutingReleaseStore: Sendable {
    private let client: PostgresClient
    private let logger: Logger
    private let runTask: Task<Void, Never>
    private let timeout: Duration

    public init(host: String, port: Int, database: String, username: String, logger: Logger, timeout: Duration = .seconds(5)) async throws {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: nil, database: database, tls: .disable
        )
        configuration.options.additionalStartupParameters = [("statement_timeout", "5000"), ("application_name", "ordercell-control")]
        configuration.options.maximumConnections = 4
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        self.timeout = timeout
        self.runTask = Task { await client.run() }
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
        }
    }

    deinit { runTask.cancel() }

    /// The newest release, if any was published.
    public func latest() async throws -> RoutingRelease? {
        let client = self.client
        let logger = self.logger
        return try await withDeadline(timeout) {
            let rows = try await client.query(
                "SELECT document, author, reason, created_at FROM routing_releases ORDER BY version DESC LIMIT 1", logger: logger
            )
            for try await (document, author, reason, createdAt) in rows.decode((String, String, String, Date).self) {
                let table = try JSONDecoder().decode(RoutingTable.self, from: Data(document.utf8))
                return RoutingRelease(table: table, author: author, reason: reason, createdAt: createdAt)
            }
            return nil
        }
    }

    /// Every release, newest first (the audit trail).
    public func history(limit: Int = 100) async throws -> [(version: UInt64, author: String, reason: String, createdAt: Date)] {
        let client = self.client
        let logger = self.logger
        return try await withDeadline(timeout) {
            var result: [(UInt64, String, String, Date)] = []
            let rows = try await client.query(
                "SELECT version, author, reason, created_at FROM routing_releases ORDER BY version DESC LIMIT \(limit)", logger: logger
            )
            for try await (version, author, reason, createdAt) in rows.decode((Int64, String, String, Date).self) {
                result.append((UInt64(version), author, reason, createdAt))
            }
            return result.map { (version: $0.0, author: $0.1, reason: $0.2, createdAt: $0.3) }
        }
    }

    /// Publishes `table` as the next release; refused if its version is not
    /// exactly one above the newest.
    public func publish(_ table: RoutingTable, author: String, reason: String) async throws {
        let client = self.client
        let logger = self.logger
        let document = String(decoding: try JSONEncoder().encode(table), as: UTF8.self)
        let version = Int64(table.version)
        try await withDeadline(timeout) {
            let rows = try await client.query(
                """
                INSERT INTO routing_releases (version, document, author, reason)
                SELECT \(version), \(document), \(author), \(reason)
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
                throw RoutingPublishError.staleVersion(expected: table.version - 1, current: UInt64(current))
            }
        }
    }
}
