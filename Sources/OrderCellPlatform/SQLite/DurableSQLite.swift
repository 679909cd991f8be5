import Dispatch
import GRDB

/// Opens SQLite databases whose acknowledged commits survive a power loss:
/// WAL mode (readers beside the one writer) with every commit `fsync`ed.
///
/// GRDB sets up WAL mode on the writer after the configuration's
/// `prepareDatabase`, and with it `synchronous = NORMAL`, which does not
/// `fsync` a commit; so FULL is set again on the one writer connection GRDB
/// keeps for the pool's life. Opening is blocking and runs on a dispatch
/// queue, never on the caller's executor.
public enum DurableSQLite {
    /// Opens (creating if needed) the database at `path` and hands the pool
    /// to `setUp` (migrations, building the store) on the same queue.
    ///
    /// - Parameters:
    ///   - everyConnection: pragmas for every connection, readers included.
    ///   - writer: pragmas for the writer connection, after GRDB's WAL set-up.
    public static func open<Result: Sendable>(
        path: String, busyTimeoutSeconds: Double, everyConnection: [String] = [], writer: [String] = [],
        setUp: @escaping @Sendable (DatabasePool) throws -> Result
    ) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Swift.Result {
                    try setUp(try openPool(path: path, busyTimeoutSeconds: busyTimeoutSeconds, everyConnection: everyConnection, writer: writer))
                })
            }
        }
    }

    private static func openPool(path: String, busyTimeoutSeconds: Double, everyConnection: [String], writer: [String]) throws -> DatabasePool {
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeoutSeconds)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            for pragma in everyConnection { try db.execute(sql: pragma) }
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // On Apple platforms fsync does not flush the drive's cache; F_FULLFSYNC does (no effect elsewhere).
            try db.execute(sql: "PRAGMA fullfsync = ON")
            for pragma in writer { try db.execute(sql: pragma) }
        }
        return pool
    }
}
