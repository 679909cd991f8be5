import GRDB
import Synchronization

/// Copies a cell's SQLite write-ahead log back into its database file from
/// a connection of its own, so that the writer never does it.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses its
/// threshold (1 000 pages), on the one writer connection: every create
/// queued behind that commit waits for the whole copy and its `fsync`
/// (with checkpoints off for a run, the store's p90 at 5 400 inserts/s fell
/// from ~5 ms to 0.34 ms). A passive checkpoint on another connection runs
/// beside the writer — SQLite's WAL lets writers append while it copies —
/// and the writer keeps a high automatic threshold only as a backstop,
/// should these fall behind (docs/performance.md, sixth look).
final class SQLiteCheckpointer: Sendable {
    /// How often the log is copied back.
    static let interval = Duration.milliseconds(100)
    /// The writer's own automatic checkpoint threshold, in pages: a backstop only.
    static let writerBackstopPages = 10_000

    /// What the last checkpoint found and did, and how many have run.
    struct Progress: Sendable, Equatable {
        var checkpoints = 0
        /// Frames in the log, and how many of them are in the database file now.
        var logFrames = 0
        var checkpointedFrames = 0
    }

    private let connection: DatabaseQueue
    private let progressBox = Mutex(Progress())

    var progress: Progress { progressBox.withLock { $0 } }

    /// Opens the checkpointing connection to the database at `path` (blocking).
    init(path: String, busyTimeoutSeconds: Double) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeoutSeconds)
        configuration.label = "checkpointer"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        connection = try DatabaseQueue(path: path, configuration: configuration)
    }

    /// One passive checkpoint: copies what no reader still needs, waits for nobody.
    func checkpoint() async throws {
        let result = try await connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        progressBox.withLock { progress in
            progress.checkpoints += 1
            progress.logFrames = result.walFrameCount
            progress.checkpointedFrames = result.checkpointedFrameCount
        }
    }

    /// Checkpoints every ``interval`` while `owner` lives; returns at once.
    static func run<Owner: AnyObject & Sendable>(for owner: Owner, checkpointer: @escaping @Sendable (Owner) -> SQLiteCheckpointer) {
        Task.detached(priority: .utility) { [weak owner] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let owner else { return }
                let current = checkpointer(owner)
                // A failed checkpoint is retried at the next tick; the writer's backstop bounds the log meanwhile.
                try? await current.checkpoint()
            }
        }
    }
}
