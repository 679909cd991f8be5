import Foundation
import Logging
import OrderModel
import PostgresNIO
import Synchronization
import Testing

@testable import CellStorage

/// The storage engines every store test runs against.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// Runs `body` with a fresh, empty store in a temporary location and a
    /// way to reopen it; every store it opened is closed when it returns.
    func withStore(
        _ body: (_ store: any OrderStore, _ reopen: @escaping @Sendable () async throws -> any OrderStore) async throws -> Void
    ) async throws {
        switch self {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let path = directory.appendingPathComponent("cell.sqlite").path
            try await body(try await SQLiteOrderStore.open(path: path), { try await SQLiteOrderStore.open(path: path) })
        case .postgres:
            let servers = try #require(PostgresTestServers.current, "the suite needs the .postgresServers trait")
            let configuration = try await servers.makeDatabase()
            var logger = Logger(label: "ordercell.test.postgres")
            logger.logLevel = .error
            let running = RunningStores(configuration: configuration, logger: logger)
            do {
                try await body(try await running.open(), { try await running.open() })
            } catch {
                await running.closeAll()
                throw error
            }
            await running.closeAll()
        }
    }
}

/// The PostgreSQL stores one test opened, each running until the test ends.
final class RunningStores: Sendable {
    let configuration: PostgresCellConfiguration
    let logger: Logger
    private let stores = Mutex<[(store: PostgresOrderStore, running: Task<Void, Never>)]>([])

    init(configuration: PostgresCellConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    func open() async throws -> PostgresOrderStore {
        let store = PostgresOrderStore(configuration, logger: logger)
        let running = Task { await store.run() }
        stores.withLock { $0.append((store, running)) }
        try await store.migrate()
        return store
    }

    func closeAll() async {
        for (store, running) in stores.withLock({ $0 }) {
            store.close()
            await running.value
        }
    }
}

/// The store test suite: what every ``OrderStore`` must do, run against every engine.
@Suite("Order store", .postgresServers)
struct OrderStoreSuite {
    static let now = Timestamp(secondsSinceEpoch: 1_795_301_599)
    static let cell = CellID(3)!

    static func order(sequence: Int64, merchant: String = "m1", outTradeNo: String? = nil, amount: Int64 = 1000, expireSeconds: Int64 = 600) throws -> Order {
        Order(
            id: try OrderID(cell: cell, createdAt: now, sequence: sequence), merchantID: merchant,
            outTradeNo: outTradeNo ?? "t-\(sequence)", amount: amount, currency: Currency(code: "USD")!,
            description: "order \(sequence)", createdAt: now, expiresAt: now.adding(seconds: expireSeconds)
        )
    }

    @Test(arguments: StoreKind.allCases)
    func insertAndReadBack(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            let order = try Self.order(sequence: 1)
            #expect(try await store.insert(order) == .inserted(order))
            #expect(try await store.order(order.id, consistency: .strong) == order)
            #expect(try await store.order(order.id, consistency: .eventual) == order)
            #expect(try await store.order(merchantID: "m1", outTradeNo: "t-1") == order)
            let events = try await store.events(of: order.id)
            #expect(events.map(\.kind) == [.created])
            // Same merchant and out_trade_no: the stored order comes back, nothing is written.
            let duplicate = try Self.order(sequence: 2, outTradeNo: "t-1")
            #expect(try await store.insert(duplicate) == .existing(order))
            #expect(try await store.order(duplicate.id, consistency: .strong) == nil)
            #expect(try await store.orderCount() == 1)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func batchInsertStoresNewOrdersAndFindsEarlierOnes(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            let earlier = try Self.order(sequence: 1, outTradeNo: "b-1")
            #expect(try await store.insert(earlier) == .inserted(earlier))
            var batch = try (10..<15 as Range<Int64>).map { try Self.order(sequence: $0, outTradeNo: "b-\($0)") }
            batch[2].description = nil
            let replayOfEarlier = try Self.order(sequence: 20, outTradeNo: "b-1")
            let twiceInTheBatch = try Self.order(sequence: 21, outTradeNo: "b-11")
            // The same out_trade_no of another merchant is another order.
            let otherMerchant = try Self.order(sequence: 22, merchant: "m-other", outTradeNo: "b-1")
            let outcomes = try await store.insertBatch(batch + [replayOfEarlier, twiceInTheBatch, otherMerchant])
            #expect(outcomes == batch.map { .inserted($0) } + [.existing(earlier), .existing(batch[1]), .inserted(otherMerchant)])
            for order in batch {
                #expect(try await store.order(order.id, consistency: .strong) == order)
                #expect(try await store.events(of: order.id).map(\.kind) == [.created])
            }
            #expect(try await store.order(replayOfEarlier.id, consistency: .strong) == nil)
            #expect(try await store.order(twiceInTheBatch.id, consistency: .strong) == nil)
            #expect(try await store.order(otherMerchant.id, consistency: .strong) == otherMerchant)
            #expect(try await store.orderCount() == 7)
        }
    }

    @Test("batches holding the same keys in opposite orders never deadlock", arguments: StoreKind.allCases)
    func batchesInOppositeOrders(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            for round in 0..<10 as Range<Int64> {
                let keys = (0..<8 as Range<Int64>).map { "x-\(round)-\($0)" }
                let forward = try keys.enumerated().map { try Self.order(sequence: round * 100 + Int64($0.offset), outTradeNo: $0.element) }
                let backward = try keys.reversed().enumerated().map {
                    try Self.order(sequence: round * 100 + 50 + Int64($0.offset), outTradeNo: $0.element)
                }
                async let first = store.insertBatch(forward)
                async let second = store.insertBatch(backward)
                let outcomes = try await first + second
                // Each key stored once; the other batch found it.
                #expect(outcomes.filter { if case .inserted = $0 { true } else { false } }.count == keys.count)
            }
            #expect(try await store.orderCount() == 80)
        }
    }

    @Test("purging deletes only the given merchant's orders created before the cutoff, with their refunds and events", arguments: StoreKind.allCases)
    func purgeOrders(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            let probes = try (1...3 as ClosedRange<Int64>).map { try Self.order(sequence: $0, merchant: ProbeMerchant.id, amount: 1) }
            for probe in probes {
                _ = try await store.insert(probe)
                _ = try await store.apply(.pay(paymentID: "p-\(probe.id)", amount: 1, keyClaimed: true), to: probe.id, now: Self.now)
                _ = try await store.apply(.refund(refundID: "r-\(probe.id)", amount: 1, reason: nil), to: probe.id, now: Self.now)
            }
            let merchants = try Self.order(sequence: 10, merchant: "m1")
            _ = try await store.insert(merchants)
            let later = Self.now.adding(seconds: 1)
            #expect(try await store.purgeOrders(of: ProbeMerchant.id, createdBefore: Self.now, limit: 10) == 0)
            #expect(try await store.purgeOrders(of: ProbeMerchant.id, createdBefore: later, limit: 2) == 2)
            #expect(try await store.purgeOrders(of: ProbeMerchant.id, createdBefore: later, limit: 10) == 1)
            for probe in probes {
                #expect(try await store.order(probe.id, consistency: .strong) == nil)
                #expect(try await store.events(of: probe.id).isEmpty)
                #expect(try await store.refunds(of: probe.id).isEmpty)
            }
            #expect(try await store.order(merchants.id, consistency: .strong) == merchants)
            #expect(try await store.orderCount() == 1)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func commandsPersistWithTheirEvents(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            let order = try Self.order(sequence: 1)
            _ = try await store.insert(order)
            let later = Self.now.adding(seconds: 5)
            _ = try await store.apply(.pay(paymentID: "pay-1", amount: 1000, keyClaimed: true), to: order.id, now: later)
            _ = try await store.apply(.refund(refundID: "r-1", amount: 250, reason: "damaged"), to: order.id, now: later)
            let replay = try await store.apply(.refund(refundID: "r-1", amount: 250, reason: "damaged"), to: order.id, now: later)
            #expect(replay.refund?.amount == 250)
            guard case .unchanged = replay else { Issue.record("a repeated refund must not write"); return }
            let stored = try #require(try await store.order(order.id, consistency: .strong))
            #expect(stored.status == .partiallyRefunded && stored.refundedAmount == 250 && stored.paymentID == "pay-1")
            #expect(stored.paidAt == later && stored.revision == 3)
            #expect(try await store.refunds(of: order.id).map(\.refundID) == ["r-1"])
            #expect(try await store.events(of: order.id).map(\.kind) == [.created, .paid, .refunded])
            #expect(try await store.events(of: order.id).map(\.sequence) == [1, 2, 3])
            await #expect(throws: OrderError.self) {
                _ = try await store.apply(.close, to: order.id, now: later)
            }
            let missing = try Self.order(sequence: 99)
            do {
                _ = try await store.apply(.close, to: missing.id, now: later)
                Issue.record("a command on a missing order must fail")
            } catch let error as OrderError {
                #expect(error.code == .orderNotFound)
            }
        }
    }

    @Test("the event feed gives every event once, in commit order, with its merchant, resumable from any position", arguments: StoreKind.allCases)
    func eventFeed(kind: StoreKind) async throws {
        try await kind.withStore { store, reopen in
            #expect(try await store.eventFeed(after: .start, limit: 10).isEmpty)
            let first = try Self.order(sequence: 1)
            let second = try Self.order(sequence: 2, merchant: "m2")
            _ = try await store.insert(first)
            _ = try await store.insert(second)
            let later = Self.now.adding(seconds: 5)
            _ = try await store.apply(.pay(paymentID: "pay-1", amount: 1000, keyClaimed: true), to: first.id, now: later)
            _ = try await store.apply(.close, to: second.id, now: later)
            _ = try await store.apply(.refund(refundID: "r-1", amount: 100, reason: nil), to: first.id, now: later)
            // On PostgreSQL an event shows once every transaction older than its own has ended, on the whole
            // server: the suites running beside this one on it hold the horizon back for a moment.
            var all: [FeedEvent] = []
            let deadline = ContinuousClock.now.advanced(by: .seconds(30))
            while all.count < 5, ContinuousClock.now < deadline {
                all = try await store.eventFeed(after: .start, limit: 100)
                if all.count < 5 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(all.map(\.event.kind) == [.created, .created, .paid, .closed, .refunded])
            #expect(all.map(\.merchantID) == ["m1", "m2", "m1", "m2", "m1"])
            #expect(all.map(\.id) == ["\(first.id)-1", "\(second.id)-1", "\(first.id)-2", "\(second.id)-2", "\(first.id)-3"])
            #expect(zip(all, all.dropFirst()).allSatisfy { $0.position < $1.position }, "positions only grow")
            #expect(all[4].event.amount == 100 && all[4].event.reference == "r-1")
            // Pages of two from each position: the same events, none twice, none skipped.
            var paged: [FeedEvent] = []
            var position = EventFeedPosition.start
            while true {
                let page = try await store.eventFeed(after: position, limit: 2)
                guard let last = page.last else { break }
                paged += page
                position = last.position
            }
            #expect(paged == all)
            // A position survives a restart (its text form is what a reader stores).
            let resumed = try #require(EventFeedPosition(all[2].position.description))
            #expect(try await reopen().eventFeed(after: resumed, limit: 100) == Array(all[3...]))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func concurrentRefundsNeverExceedTheAmount(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            let order = try Self.order(sequence: 1, amount: 1000)
            _ = try await store.insert(order)
            // 16 racers pay with the same payment id: one payment, one event.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<16 {
                    group.addTask { _ = try await store.apply(.pay(paymentID: "p", amount: 1000, keyClaimed: true), to: order.id, now: Self.now) }
                }
                try await group.waitForAll()
            }
            #expect(try await store.events(of: order.id).filter { $0.kind == .paid }.count == 1)
            // 60 distinct refunds of 30 race; each refund id is also sent twice.
            let accepted = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<120 {
                    group.addTask {
                        do {
                            _ = try await store.apply(.refund(refundID: "r-\(index % 60)", amount: 30, reason: nil), to: order.id, now: Self.now)
                            return true
                        } catch let error as OrderError where error.code == .refundExceedsAmount {
                            return false
                        }
                    }
                }
                return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
            }
            let stored = try #require(try await store.order(order.id, consistency: .strong))
            let refunds = try await store.refunds(of: order.id)
            #expect(refunds.count == 33, "1000 / 30 = 33 refunds fit")
            #expect(refunds.reduce(0) { $0 + $1.amount } == stored.refundedAmount)
            #expect(stored.refundedAmount == 990 && stored.refundedAmount <= stored.amount)
            #expect(accepted >= 33)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func expiredOrdersAreFoundUntilClosed(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            let short = try Self.order(sequence: 1, expireSeconds: 10)
            let long = try Self.order(sequence: 2, expireSeconds: 1000)
            let paid = try Self.order(sequence: 3, expireSeconds: 10)
            for order in [short, long, paid] { _ = try await store.insert(order) }
            _ = try await store.apply(.pay(paymentID: "p", amount: 1000, keyClaimed: true), to: paid.id, now: Self.now)
            let later = Self.now.adding(seconds: 11)
            #expect(try await store.expiredOrders(at: later, limit: 10) == [short.id])
            _ = try await store.apply(.expire, to: short.id, now: later)
            #expect(try await store.expiredOrders(at: later, limit: 10) == [])
            #expect(try await store.order(short.id, consistency: .strong)?.closeReason == .expired)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func sequenceSegmentsAreNeverHandedOutTwice(kind: StoreKind) async throws {
        try await kind.withStore { store, reopen in
            let first = try await store.reserveSequenceSegment(size: 100)
            let second = try await store.reserveSequenceSegment(size: 100)
            #expect(first == 1...100 && second == 101...200)
            // A new process over the same database (after a crash) continues after every reserved value.
            let reopened = try await reopen()
            let third = try await reopened.reserveSequenceSegment(size: 10)
            #expect(third.lowerBound > second.upperBound)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func segmentSequenceHandsOutUniqueValuesToConcurrentCallers(kind: StoreKind) async throws {
        try await kind.withStore { store, reopen in
            let sequence = SegmentSequence(segmentSize: 50) { try await store.reserveSequenceSegment(size: $0) }
            let values = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for _ in 0..<8 {
                    group.addTask { var mine: [Int64] = []; for _ in 0..<200 { mine.append(try await sequence.next()) }; return mine }
                }
                return try await group.reduce(into: [Int64]()) { $0 += $1 }
            }
            #expect(Set(values).count == 1600)
            // The allocator of a restarted cell never reuses a value of the old one.
            let restarted = SegmentSequence(segmentSize: 50) { try await reopen().reserveSequenceSegment(size: $0) }
            let next = try await restarted.next()
            #expect(next > values.max()!)
        }
    }
}

@Suite("The event feed on PostgreSQL", .postgresServers)
struct PostgresEventFeedTests {
    @Test("the feed never passes an event whose transaction is still running, though a later one committed first")
    func feedWaitsForRunningTransactions() async throws {
        let servers = try #require(PostgresTestServers.current)
        let configuration = try await servers.makeDatabase()
        var logger = Logger(label: "ordercell.test.feed")
        logger.logLevel = .error
        let running = RunningStores(configuration: configuration, logger: logger)
        let store = try await running.open()
        let client = PostgresClient(configuration: configuration.clientConfiguration(for: configuration.primary, applicationName: "feed-test"))
        let clientRunning = Task { await client.run() }
        defer {
            clientRunning.cancel()
        }
        let early = try OrderStoreSuite.order(sequence: 1)
        let late = try OrderStoreSuite.order(sequence: 2)
        _ = try await store.insert(early)
        _ = try await store.insert(late)
        // Other suites' transactions on the same server hold the horizon back for a moment: wait for both creations.
        var creations: [FeedEvent] = []
        try await pollFeed {
            creations = try await store.eventFeed(after: .start, limit: 10)
            return creations.count == 2
        }
        let created = try #require(creations.last?.position)

        // A transaction appends an event and stays open; a later one appends and commits.
        let (gate, openGate) = AsyncStream.makeStream(of: Void.self)
        let (appended, signalAppended) = AsyncStream.makeStream(of: Void.self)
        let slow = Task {
            try await client.withTransaction(logger: logger) { connection in
                let id = early.id.description
                let at = OrderStoreSuite.now.millisecondsSinceEpoch
                try await connection.query(
                    "INSERT INTO order_events (order_id, sequence, kind, at, status_after) VALUES (\(id), 2, 'ORDER_CLOSED', \(at), 'CLOSED')",
                    logger: logger
                )
                signalAppended.yield()
                for await _ in gate { break }
            }
        }
        for await _ in appended { break }
        _ = try await store.apply(.close, to: late.id, now: OrderStoreSuite.now.adding(seconds: 1))
        // The committed event waits behind the running transaction: a reader moving on would skip the slow one.
        #expect(try await store.eventFeed(after: created, limit: 10).isEmpty)
        openGate.yield()
        try await slow.value
        var after: [FeedEvent] = []
        try await pollFeed {
            after = try await store.eventFeed(after: created, limit: 10)
            return after.count == 2
        }
        #expect(after.map(\.event.orderID) == [early.id, late.id], "the slow transaction's event first: it began first")
        // A position this server never reached is a history that is not this one: said, not an empty page.
        let future = EventFeedPosition(transaction: UInt64(Int64.max), event: 1)
        await #expect(throws: (any Error).self) { try await store.eventFeed(after: future, limit: 10) }
        await running.closeAll()
    }
}

/// Polls `condition` every 50 ms until it holds; fails after 30 s.
private func pollFeed(_ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now.advanced(by: .seconds(30))
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("the feed did not show the events within 30 s")
}
