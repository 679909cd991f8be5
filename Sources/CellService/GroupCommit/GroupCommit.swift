import CellStorage
import OrderModel
import Synchronization

/// Group commit of a cell service's writes: concurrent creates (or
/// merchant-key binds) share one store transaction, so that one commit — and
/// one wait for the synchronous replica — acknowledges many of them.
///
/// At most ``maximumBatches`` inserts run at once. A create that finds a
/// slot free and nobody waiting inserts its order alone, at once (no added
/// latency when the cell is not busy); otherwise it waits, and the next
/// slot to free up takes every waiting order (up to
/// ``maximumBatchSize``) as one batch. No create is answered before the
/// transaction holding its order commits: group commit changes how many
/// orders a commit carries, not what an answer means.
///
/// A create still waiting for its turn when its caller's deadline passes,
/// or after ``maximumWait``, fails without being inserted: its caller has
/// given up by then (and may have created the order in another cell), so
/// storing it late would make a second order the merchant never heard of.
final class GroupCommit<Item: Sendable, Outcome: Sendable>: Sendable {
    typealias Insert = @Sendable ([Item]) async throws -> [Outcome]

    let maximumBatches: Int
    let maximumBatchSize: Int
    let maximumWait: Duration
    private let insert: Insert
    private let clock = ContinuousClock()
    fileprivate let state: Mutex<State>

    struct Waiting: Sendable {
        var item: Item
        var since: ContinuousClock.Instant
        /// Not inserted after this.
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Outcome, any Error>
    }

    /// What a create that waited too long gets.
    struct WaitedTooLong: Error, CustomStringConvertible {
        var waited: Duration
        var description: String { "the create waited \(waited) for a group commit and was not stored" }
    }

    /// The decisions, no I/O: who runs the next insert and with what.
    struct State: Sendable {
        var waiting: [Waiting] = []
        var running = 0

        /// A create arrives: it runs alone when a slot is free and nobody waits.
        mutating func arrive(limit: Int) -> Bool {
            guard running < limit, waiting.isEmpty else { return false }
            running += 1
            return true
        }

        /// A create queued: returns a batch to start when a slot is free.
        mutating func enqueue(_ entry: Waiting, limit: Int, batchSize: Int) -> [Waiting]? {
            waiting.append(entry)
            guard running < limit else { return nil }
            running += 1
            return take(batchSize)
        }

        /// An insert finished: the next batch for its slot, or nil (the slot is free).
        mutating func finished(batchSize: Int) -> [Waiting]? {
            guard !waiting.isEmpty else {
                running -= 1
                return nil
            }
            return take(batchSize)
        }

        private mutating func take(_ batchSize: Int) -> [Waiting] {
            let count = min(batchSize, waiting.count)
            let batch = Array(waiting.prefix(count))
            waiting.removeFirst(count)
            return batch
        }
    }

    init(maximumBatches: Int, maximumBatchSize: Int, maximumWait: Duration, insert: @escaping Insert) {
        self.maximumBatches = max(1, maximumBatches)
        self.maximumBatchSize = max(1, maximumBatchSize)
        self.maximumWait = maximumWait
        self.insert = insert
        self.state = Mutex(State())
    }

    /// Writes `item`, alone or with others, and returns its outcome once committed.
    func insert(_ item: Item, deadline: ContinuousClock.Instant? = nil) async throws -> Outcome {
        if state.withLock({ $0.arrive(limit: maximumBatches) }) {
            defer { slotFreed() }
            return try await insert([item])[0]
        }
        return try await withCheckedThrowingContinuation { continuation in
            let now = clock.now
            let batch = state.withLock {
                $0.enqueue(
                    Waiting(
                        item: item, since: now, deadline: min(now.advanced(by: maximumWait), deadline ?? .now.advanced(by: .seconds(3600))),
                        continuation: continuation
                    ),
                    limit: maximumBatches, batchSize: maximumBatchSize
                )
            }
            if let batch { Task { await self.run(batch) } }
        }
    }

    /// Creates waiting for their turn (for tests).
    var waitingCount: Int { state.withLock { $0.waiting.count } }


    /// A slot's insert finished: it goes on with the creates that waited meanwhile.
    private func slotFreed() {
        guard let batch = state.withLock({ $0.finished(batchSize: maximumBatchSize) }) else { return }
        Task { await run(batch) }
    }

    private func run(_ first: [Waiting]) async {
        var batch = first
        while true {
            let now = clock.now
            batch.removeAll { entry in
                guard now >= entry.deadline else { return false }
                entry.continuation.resume(throwing: WaitedTooLong(waited: entry.since.duration(to: now)))
                return true
            }
            if !batch.isEmpty {
                do {
                    let outcomes = try await insert(batch.map(\.item))
                    for (entry, outcome) in zip(batch, outcomes) { entry.continuation.resume(returning: outcome) }
                    if outcomes.count < batch.count {
                        for entry in batch[outcomes.count...] {
                            entry.continuation.resume(throwing: StoreError("the batch write lost an item"))
                        }
                    }
                } catch {
                    for entry in batch { entry.continuation.resume(throwing: error) }
                }
            }
            guard let next = state.withLock({ $0.finished(batchSize: maximumBatchSize) }) else { return }
            batch = next
        }
    }
}

/// Concurrent creates of a cell service sharing transactions.
typealias CreateGroupCommit = GroupCommit<Order, StoreInsertOutcome>

extension GroupCommit where Item == Order {
    /// The waiting creates, and when each stops being stored (for tests).
    var waiting: [(outTradeNo: String, deadline: ContinuousClock.Instant)] {
        state.withLock { $0.waiting.map { ($0.item.outTradeNo, $0.deadline) } }
    }
}

/// Concurrent merchant-key binds of a cell service sharing transactions.
typealias BindGroupCommit = GroupCommit<MerchantKeyBindRequest, Result<MerchantKeyBinding, OrderError>>

/// Concurrent creates in the cell holding their key's index slot (bind, order and claim) sharing transactions.
typealias BoundCreateGroupCommit = GroupCommit<BoundInsert, Result<BoundInsertOutcome, OrderError>>
