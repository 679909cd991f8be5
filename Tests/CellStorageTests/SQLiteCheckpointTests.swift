import Foundation
import OrderModel
import Testing

@testable import CellStorage

/// The embedded store's write-ahead log is copied back by a connection of
/// its own, not by the commits of creates.
@Suite("SQLite checkpoints")
struct SQLiteCheckpointTests {
    @Test("the writer leaves checkpoints to the checkpointer, which copies the whole log back while orders are written")
    func checkpointerCopiesTheLogBack() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-checkpoint-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cell.sqlite").path
        var store: SQLiteOrderStore? = try await SQLiteOrderStore.open(path: path)
        // The checkpointer runs as the store's service would in a process's group.
        let checkpoints = Task { [store] in await store!.run() }
        let settings = try await store!.writerSettings()
        #expect(settings.automaticCheckpointPages == SQLiteCheckpointer.writerBackstopPages)
        #expect(settings.synchronous == 2, "the writer fsyncs every commit (FULL), whatever GRDB's WAL set-up chose")

        // Orders written one by one and in batches, with checkpoints running beside them.
        for sequence in 1...100 as ClosedRange<Int64> {
            _ = try await store!.insert(try OrderStoreSuite.order(sequence: sequence))
        }
        for start in stride(from: 101, through: 300, by: 25) as StrideThrough<Int64> {
            let batch = try (start..<start + 25).map { try OrderStoreSuite.order(sequence: $0) }
            #expect(try await store!.insertBatch(batch) == batch.map { .inserted($0) })
        }

        // Within a few ticks a checkpoint finds the log and copies all of it back.
        var progress = store!.checkpointProgress
        for _ in 0..<200 where !(progress.logFrames > 0 && progress.checkpointedFrames == progress.logFrames) {
            try await Task.sleep(for: .milliseconds(50))
            progress = store!.checkpointProgress
        }
        #expect(progress.checkpoints > 0)
        #expect(progress.failures == 0, "\(progress)")
        #expect(progress.logFrames > 0 && progress.checkpointedFrames == progress.logFrames, "\(progress)")
        #expect(try await store!.orderCount() == 300)

        // Closed and opened again: every order is there.
        checkpoints.cancel()
        await checkpoints.value
        store = nil
        let reopened = try await SQLiteOrderStore.open(path: path)
        #expect(try await reopened.orderCount() == 300)
        let last = try OrderStoreSuite.order(sequence: 300)
        #expect(try await reopened.order(last.id, consistency: .strong) == last)
    }

    @Test("the writer finishes a checkpoint only when the log is long and little of it is left to copy")
    func writerFinishesOnlyShortRemainders() {
        let long = SQLiteCheckpointer.writerFinishPages
        // A long log the side connection copied nearly all of: the writer copies the rest, the log restarts.
        #expect(SQLiteCheckpointer.writerShouldFinish((walFrameCount: long + 500, checkpointedFrameCount: long + 480)))
        #expect(SQLiteCheckpointer.writerShouldFinish((walFrameCount: long, checkpointedFrameCount: long - SQLiteCheckpointer.writerFinishMostPages)))
        // A short log: the side connection keeps up, nothing to restart yet.
        #expect(!SQLiteCheckpointer.writerShouldFinish((walFrameCount: long - 1, checkpointedFrameCount: long - 10)))
        // Far behind: the writer would pause for a long copy; the side connection goes on alone.
        #expect(!SQLiteCheckpointer.writerShouldFinish((walFrameCount: 5_000, checkpointedFrameCount: 1_000)))
        #expect(!SQLiteCheckpointer.writerShouldFinish((walFrameCount: long + SQLiteCheckpointer.writerFinishMostPages + 1, checkpointedFrameCount: long - 1)))
    }

    @Test("a failing checkpointer warns on the first failure of a run, then once a minute, and says when it works again")
    func failuresAreWarnedAboutSparingly() {
        var progress = SQLiteCheckpointer.Progress()
        let quiet = progress.recordSuccess()
        #expect(quiet == nil, "nothing to report after a round that worked")
        var warnings: [Int] = []
        for round in 1...1_300 where progress.recordFailure("disk I/O error") { warnings.append(round) }
        #expect(warnings == [1, 600, 1_200])
        #expect(progress.failures == 1_300 && progress.lastFailure == "disk I/O error")
        let recovered = progress.recordSuccess()
        #expect(recovered == 1_300)
        let again = progress.recordSuccess()
        #expect(again == nil)
        let warnsAtOnce = progress.recordFailure("again")
        #expect(warnsAtOnce, "a new run of failures warns at once")
    }
}
