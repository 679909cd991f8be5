import CellStorage
import OrderModel
import Synchronization
import Testing

@testable import CellService

/// The batches a group commit handed to its insert, answering each order as inserted.
private final class RecordingInsert: Sendable {
    private let batches = Mutex<[[Order]]>([])
    private let gate: AsyncStream<Void>
    private let opener: AsyncStream<Void>.Continuation
    private let failAfterFirst: Bool

    init(failAfterFirst: Bool = false) {
        (gate, opener) = AsyncStream.makeStream()
        self.failAfterFirst = failAfterFirst
    }

    var sizes: [Int] { batches.withLock { $0.map(\.count) } }
    func open() { opener.yield() }

    func insert(_ orders: [Order]) async throws -> [StoreInsertOutcome] {
        let first = batches.withLock { batches in
            batches.append(orders)
            return batches.count == 1
        }
        if first {
            for await _ in gate { break }
        } else if failAfterFirst {
            throw StoreError("the primary went away")
        }
        return orders.map { .inserted($0) }
    }
}

private func order(_ number: Int64) throws -> Order {
    let now = Timestamp(secondsSinceEpoch: 1_795_301_599)
    return Order(
        id: try OrderID(cell: CellID(2)!, createdAt: now, sequence: number), merchantID: "shop", outTradeNo: "g-\(number)",
        amount: 100, currency: Currency(code: "EUR")!, description: nil, createdAt: now, expiresAt: now.adding(seconds: 600)
    )
}

/// Waits (up to 10 s: suites share two cores) until `condition` holds.
private func waitUntil(_ condition: () -> Bool) async throws {
    let giveUp = ContinuousClock.now.advanced(by: .seconds(10))
    while !condition(), ContinuousClock.now < giveUp { try await Task.sleep(for: .milliseconds(2)) }
    try #require(condition())
}

@Suite("Group commit")
struct GroupCommitTests {
    @Test("a create finding the cell idle commits alone; creates arriving meanwhile share the next commit")
    func grouping() async throws {
        let recorder = RecordingInsert()
        let group = CreateGroupCommit(maximumBatches: 1, maximumBatchSize: 64, maximumWait: .seconds(30)) { try await recorder.insert($0) }
        try await withThrowingTaskGroup(of: (Order, StoreInsertOutcome).self) { tasks in
            let first = try order(1)
            tasks.addTask { (first, try await group.insert(first)) }
            try await waitUntil { recorder.sizes == [1] }
            for number in 2...11 as ClosedRange<Int64> {
                let next = try order(number)
                tasks.addTask { (next, try await group.insert(next)) }
            }
            try await waitUntil { group.waitingCount == 10 }
            recorder.open()
            for try await (order, outcome) in tasks { #expect(outcome == .inserted(order)) }
        }
        #expect(recorder.sizes == [1, 10])
    }

    @Test("a failed commit fails every create it carried, and only those")
    func failure() async throws {
        let recorder = RecordingInsert(failAfterFirst: true)
        let group = CreateGroupCommit(maximumBatches: 1, maximumBatchSize: 64, maximumWait: .seconds(30)) { try await recorder.insert($0) }
        let first = try order(1)
        let firstTask = Task { try await group.insert(first) }
        try await waitUntil { recorder.sizes == [1] }
        let others = try (2...6 as ClosedRange<Int64>).map { number in
            let next = try order(number)
            return Task { try await group.insert(next) }
        }
        try await waitUntil { group.waitingCount == 5 }
        recorder.open()
        #expect(try await firstTask.value == .inserted(first))
        for other in others { await #expect(throws: StoreError.self) { try await other.value } }
        #expect(recorder.sizes == [1, 5])
    }

    @Test("creates that waited longer than the limit fail without being stored")
    func waitedTooLong() async throws {
        let recorder = RecordingInsert()
        let group = CreateGroupCommit(maximumBatches: 1, maximumBatchSize: 64, maximumWait: .milliseconds(20)) { try await recorder.insert($0) }
        let first = try order(1)
        let firstTask = Task { try await group.insert(first) }
        try await waitUntil { recorder.sizes == [1] }
        let late = try order(2)
        let lateTask = Task { try await group.insert(late) }
        try await waitUntil { group.waitingCount == 1 }
        try await Task.sleep(for: .milliseconds(60))
        recorder.open()
        #expect(try await firstTask.value == .inserted(first))
        await #expect(throws: CreateGroupCommit.WaitedTooLong.self) { try await lateTask.value }
        #expect(recorder.sizes == [1])
    }

    @Test("batches never exceed the size limit")
    func batchSize() async throws {
        let recorder = RecordingInsert()
        let group = CreateGroupCommit(maximumBatches: 1, maximumBatchSize: 4, maximumWait: .seconds(30)) { try await recorder.insert($0) }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            let first = try order(1)
            tasks.addTask { _ = try await group.insert(first) }
            try await waitUntil { recorder.sizes == [1] }
            for number in 2...11 as ClosedRange<Int64> {
                let next = try order(number)
                tasks.addTask { _ = try await group.insert(next) }
            }
            try await waitUntil { group.waitingCount == 10 }
            recorder.open()
            try await tasks.waitForAll()
        }
        #expect(recorder.sizes == [1, 4, 4, 2])
    }
}
