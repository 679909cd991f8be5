import CellRouting
import Foundation
import GRDB
import OrderCellPlatform

/// Routing releases in a SQLite file: the embedded deployment's control database.
public final class SQLiteRoutingReleaseStore: RoutingReleaseStore {
    private let pool: DatabasePool

    /// The writer connection's `synchronous` level; 2 is FULL (for tests).
    func writerSynchronousLevel() async throws -> Int {
        try await pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? 0 }
    }

    private init(pool: DatabasePool) { self.pool = pool }

    /// Opens (creating if needed) the release database at `path`; a
    /// published release is on disk before it is acknowledged (``DurableSQLite``).
    public static func open(path: String) async throws -> SQLiteRoutingReleaseStore {
        try await DurableSQLite.open(path: path, busyTimeoutSeconds: 5) { pool in
            try pool.write { db in
                try db.execute(
                    sql: """
                        CREATE TABLE IF NOT EXISTS routing_releases (
                            version INTEGER PRIMARY KEY,
                            document TEXT NOT NULL,
                            author TEXT NOT NULL,
                            reason TEXT NOT NULL,
                            created_at_ms INTEGER NOT NULL,
                            rolled_back_to INTEGER
                        )
                        """
                )
            }
            return SQLiteRoutingReleaseStore(pool: pool)
        }
    }

    public func latest() async throws -> RoutingRelease? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM routing_releases ORDER BY version DESC LIMIT 1").map(Self.release(from:))
        }
    }

    public func release(_ version: UInt64) async throws -> RoutingRelease? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM routing_releases WHERE version = ?", arguments: [Int64(clamping: version)]).map(Self.release(from:))
        }
    }

    public func history(limit: Int) async throws -> [RoutingReleaseSummary] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT version, author, reason, created_at_ms, rolled_back_to FROM routing_releases ORDER BY version DESC LIMIT ?",
                arguments: [limit]
            ).map { row in
                RoutingReleaseSummary(
                    version: UInt64(row["version"] as Int64), author: row["author"], reason: row["reason"],
                    createdAt: Date(timeIntervalSince1970: Double(row["created_at_ms"] as Int64) / 1000),
                    rolledBackTo: (row["rolled_back_to"] as Int64?).map(UInt64.init)
                )
            }
        }
    }

    public func publish(_ release: RoutingRelease) async throws {
        let document = try RoutingRelease.encodeTable(release.table)
        try await pool.write { db in
            let current = try Int64.fetchOne(db, sql: "SELECT COALESCE(max(version), 0) FROM routing_releases") ?? 0
            guard Int64(release.version) == current + 1 else {
                throw RoutingPublishError.staleVersion(expected: release.version - 1, current: UInt64(current))
            }
            try db.execute(
                sql: "INSERT INTO routing_releases (version, document, author, reason, created_at_ms, rolled_back_to) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [
                    Int64(release.version), document, release.author, release.reason,
                    Int64(release.createdAt.timeIntervalSince1970 * 1000), release.rolledBackTo.map { Int64($0) },
                ]
            )
        }
    }

    private static func release(from row: Row) throws -> RoutingRelease {
        RoutingRelease(
            table: try RoutingRelease.decodeTable(row["document"]), author: row["author"], reason: row["reason"],
            createdAt: Date(timeIntervalSince1970: Double(row["created_at_ms"] as Int64) / 1000),
            rolledBackTo: (row["rolled_back_to"] as Int64?).map(UInt64.init)
        )
    }
}
