import GRDB
import Logging
import Synchronization

/// Copies a cell's SQLite write-ahead log back into its database file from
/// a connection of its own, so that creates' commits do not.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses its
/// threshold (1 000 pages), on the one writer connection: every create
/// queued behind that commit waits for the whole copy and its `fsync`s.
/// Here a passive checkpoint on another connection copies the log every
/// ``interval``, beside the writer (SQLite's WAL lets writers append while
/// it copies). Under steady writes a passive checkpoint never quite catches
/// up — the writer appends while it copies — and SQLite restarts the log
/// only once all of it is copied; so once the log is longer than
/// ``writerFinishPages`` and the side checkpoint has copied nearly all of
/// it, the writer copies the few pages left between two transactions, and
/// the next commit starts the log afresh (``writerShouldFinish(_:)``). The
/// writer keeps a high automatic threshold only as a backstop
/// (docs/performance-history.md, sixth look).
final class SQLiteCheckpointer: Sendable {
    /// How often the log is copied back.
    static let interval = Duration.milliseconds(100)
    /// The writer's own automatic checkpoint threshold, in pages: a backstop only.
    static let writerBackstopPages = 10_000
    /// A log longer than this is finished by the writer, when little of it is left to copy.
    static let writerFinishPages = 1_000
    /// At most this many pages left for the writer to copy; with more, the side connection goes on alone.
    static let writerFinishMostPages = 250
    /// A log grown past this is truncated back to it when it restarts.
    static let journalSizeLimitBytes = 64 << 20

    /// What the checkpoints found and did.
    struct Progress: Sendable, Equatable {
        var checkpoints = 0
        /// Checkpoints the writer finished because the side one fell behind.
        var finishedByWriter = 0
        /// Rounds skipped because another connection held a lock the checkpoint needs
        /// (SQLite answers a passive checkpoint `SQLITE_BUSY` then; the next round copies it).
        var busy = 0
        var failures = 0
        var lastFailure: String?
        /// Failed rounds since the last checkpoint that worked.
        var failingRounds = 0
        /// Frames in the log at the last checkpoint, and how many of them are in the database file.
        var logFrames = 0
        var checkpointedFrames = 0

        /// Counts a failed round; whether to warn about it: the first of a
        /// run of failures, then every ``SQLiteCheckpointer/failureWarningEvery``-th.
        mutating func recordFailure(_ description: String) -> Bool {
            failures += 1
            lastFailure = description
            failingRounds += 1
            return failingRounds == 1 || failingRounds.isMultiple(of: SQLiteCheckpointer.failureWarningEvery)
        }

        /// Counts a round that worked; after a run of failures, how long it was.
        mutating func recordSuccess() -> Int? {
            defer { failingRounds = 0 }
            return failingRounds > 0 ? failingRounds : nil
        }
    }

    /// Rounds between repeated warnings while checkpoints keep failing (a minute at 100 ms).
    static let failureWarningEvery = 600

    private let connection: DatabaseQueue
    private let logger: Logger
    private let progressBox = Mutex(Progress())

    var progress: Progress { progressBox.withLock { $0 } }

    /// Opens the checkpointing connection to the database at `path` (blocking).
    init(path: String, busyTimeoutSeconds: Double, logger: Logger) throws {
        var logger = logger
        logger[metadataKey: "database"] = "\(path)"
        self.logger = logger
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeoutSeconds)
        configuration.label = "checkpointer"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // On Apple platforms fsync does not flush the drive's cache; F_FULLFSYNC does (no effect elsewhere).
            try db.execute(sql: "PRAGMA checkpoint_fullfsync = ON")
        }
        connection = try DatabaseQueue(path: path, configuration: configuration)
    }

    /// One round: a passive checkpoint here, and the writer finishing it if it fell far behind.
    func checkpoint(writer: DatabasePool) async throws {
        let side = try await connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        var result = side
        let finish = Self.writerShouldFinish(side)
        if finish {
            result = try await writer.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        }
        let recovered = progressBox.withLock { progress in
            progress.checkpoints += 1
            if finish { progress.finishedByWriter += 1 }
            progress.logFrames = result.walFrameCount
            progress.checkpointedFrames = result.checkpointedFrameCount
            return progress.recordSuccess()
        }
        if let recovered {
            logger.notice("SQLite checkpoints work again", metadata: ["failed_rounds": "\(recovered)"])
        }
    }

    /// Whether the writer should copy what a side checkpoint left: only when
    /// the log is long enough to be worth restarting and what is left is
    /// small, so the writer's pause stays short.
    static func writerShouldFinish(_ side: (walFrameCount: Int, checkpointedFrameCount: Int)) -> Bool {
        side.walFrameCount >= writerFinishPages && side.walFrameCount - side.checkpointedFrameCount <= writerFinishMostPages
    }

    /// Checkpoints every ``interval`` until the task is cancelled.
    func run(writer pool: DatabasePool) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: Self.interval)
                try await checkpoint(writer: pool)
            } catch is CancellationError {
                return
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
                progressBox.withLock { $0.busy += 1 }
            } catch {
                // Retried at the next tick; the writer's backstop bounds the log meanwhile.
                let (warn, rounds) = progressBox.withLock { ($0.recordFailure("\(error)"), $0.failingRounds) }
                if warn {
                    logger.warning(
                        "SQLite checkpoint failed; the writer's own checkpoints bound the log meanwhile",
                        metadata: ["error": "\(error)", "failed_rounds": "\(rounds)"]
                    )
                }
            }
        }
    }
}
