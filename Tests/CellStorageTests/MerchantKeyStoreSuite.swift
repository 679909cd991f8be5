import Foundation
import OrderModel
import Synchronization
import Testing

@testable import CellStorage

/// The merchant-key index and the key status of orders, against every engine.
@Suite("Merchant-key index store", .postgresServers)
struct MerchantKeyStoreSuite {
    static let now = OrderStoreSuite.now
    static let key = MerchantKey(merchantID: "m1", outTradeNo: "trade-1")
    static let (one, two, three) = (CellID(1)!, CellID(2)!, CellID(3)!)

    @Test("bind reserves a new key for the candidate and answers a known key's owner to everyone else", arguments: StoreKind.allCases)
    func bindReservesThenAnswersTheOwner(kind: StoreKind) async throws {
        try await kind.withStore { store, reopen in
            let first = try await store.bindMerchantKey(Self.key, candidate: Self.two, attempt: 7, now: Self.now)
            #expect(first == MerchantKeyBinding(owner: Self.two, holder: nil, movableByCaller: true))
            // A repeat through another proxy proposes another cell: it is sent to the owner, and may not move it.
            let repeated = try await store.bindMerchantKey(Self.key, candidate: Self.one, attempt: 8, now: Self.now)
            #expect(repeated == MerchantKeyBinding(owner: Self.two, holder: nil, movableByCaller: false))
            // The entry survives a restart of the store.
            let entry = try #require(try await reopen().merchantKeyEntry(Self.key, consistency: .strong))
            #expect(entry.owner == Self.two && entry.holder == nil && entry.attempt == 7 && entry.revision == 1 && entry.abandoned.isEmpty)
            #expect(try await store.merchantKeyEntry(MerchantKey(merchantID: "m1", outTradeNo: "other"), consistency: .eventual) == nil)
        }
    }

    @Test("a batch of binds answers each as one bind after the other would, a key twice in it included", arguments: StoreKind.allCases)
    func batchOfBinds(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            _ = try await store.bindMerchantKey(Self.key, candidate: Self.three, attempt: 1, now: Self.now)
            let other = MerchantKey(merchantID: "m2", outTradeNo: "b")
            let answers = try await store.bindMerchantKeys(
                [
                    MerchantKeyBindRequest(key: other, candidate: Self.one, attempt: 2),
                    MerchantKeyBindRequest(key: Self.key, candidate: Self.one, attempt: 3),
                    MerchantKeyBindRequest(key: other, candidate: Self.two, attempt: 4),
                ],
                now: Self.now
            )
            #expect(
                try answers.map { try $0.get() } == [
                    MerchantKeyBinding(owner: Self.one, holder: nil, movableByCaller: true),
                    MerchantKeyBinding(owner: Self.three, holder: nil, movableByCaller: false),
                    MerchantKeyBinding(owner: Self.one, holder: nil, movableByCaller: false),
                ]
            )
            #expect(try await store.merchantKeyEntry(other, consistency: .strong)?.attempt == 2)
        }
    }

    @Test("only the reserving call moves a key; the cell left behind is recorded and listed once the entry is still", arguments: StoreKind.allCases)
    func moveRecordsTheCellLeftBehind(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            _ = try await store.bindMerchantKey(Self.key, candidate: Self.one, attempt: 7, now: Self.now)
            let stranger = try await store.moveMerchantKey(Self.key, from: Self.one, to: Self.three, attempt: 99, now: Self.now)
            #expect(stranger == MerchantKeyBinding(owner: Self.one, holder: nil, movableByCaller: false))
            let moved = try await store.moveMerchantKey(Self.key, from: Self.one, to: Self.two, attempt: 7, now: Self.now.adding(seconds: 1))
            #expect(moved == MerchantKeyBinding(owner: Self.two, holder: nil, movableByCaller: true))
            let entry = try #require(try await store.merchantKeyEntry(Self.key, consistency: .strong))
            #expect(entry.abandoned == [Self.one] && entry.revision == 2 && entry.attempt == 7)
            // A 64-bit attempt with the top bit set round-trips.
            let wide = MerchantKey(merchantID: "m1", outTradeNo: "wide")
            _ = try await store.bindMerchantKey(wide, candidate: Self.one, attempt: UInt64.max - 1, now: Self.now)
            #expect(try await store.merchantKeyEntry(wide, consistency: .strong)?.attempt == UInt64.max - 1)
            #expect(try await store.movedMerchantKeys(updatedBefore: Self.now.adding(seconds: 1), limit: 10).isEmpty)
            #expect(try await store.movedMerchantKeys(updatedBefore: Self.now.adding(seconds: 2), limit: 10).map(\.key) == [Self.key])
        }
    }

    @Test("a claim wins for the owner's order, or for anyone when nobody reserved the key, and never changes holder", arguments: StoreKind.allCases)
    func claimsAreFinal(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            let inOwner = try OrderID(cell: Self.two, createdAt: Self.now, sequence: 1)
            let elsewhere = try OrderID(cell: Self.one, createdAt: Self.now, sequence: 1)
            _ = try await store.bindMerchantKey(Self.key, candidate: Self.two, attempt: 7, now: Self.now)
            #expect(try await store.claimMerchantKey(Self.key, for: elsewhere, now: Self.now) == .reservedFor(Self.two))
            #expect(try await store.claimMerchantKey(Self.key, for: inOwner, now: Self.now) == .holds)
            #expect(try await store.claimMerchantKey(Self.key, for: inOwner, now: Self.now) == .holds)
            #expect(try await store.claimMerchantKey(Self.key, for: elsewhere, now: Self.now) == .heldBy(inOwner))
            // A claimed key is not moved, even by its reserving call.
            let after = try await store.moveMerchantKey(Self.key, from: Self.two, to: Self.one, attempt: 7, now: Self.now)
            #expect(after == MerchantKeyBinding(owner: Self.two, holder: inOwner, movableByCaller: false))
            // An order made while its slot could not be reached claims a key nobody reserved.
            let unreserved = MerchantKey(merchantID: "m1", outTradeNo: "never-bound")
            let lone = try OrderID(cell: Self.three, createdAt: Self.now, sequence: 4)
            #expect(try await store.claimMerchantKey(unreserved, for: lone, now: Self.now) == .holds)
            #expect(try await store.merchantKeyEntry(unreserved, consistency: .strong)?.holder == lone)
        }
    }

    @Test("a batch of claims answers each as one claim after the other would: reserved, absent, reserved elsewhere, held", arguments: StoreKind.allCases)
    func batchOfClaims(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            let keys = (0..<4).map { MerchantKey(merchantID: "mb", outTradeNo: "b-\($0)") }
            let inTwo = (0..<4).map { try! OrderID(cell: Self.two, createdAt: Self.now, sequence: Int64($0 + 1)) }
            let elsewhere = try OrderID(cell: Self.three, createdAt: Self.now, sequence: 9)
            _ = try await store.bindMerchantKey(keys[0], candidate: Self.two, attempt: 1, now: Self.now)
            _ = try await store.bindMerchantKey(keys[2], candidate: Self.one, attempt: 2, now: Self.now)
            _ = try await store.bindMerchantKey(keys[3], candidate: Self.three, attempt: 3, now: Self.now)
            #expect(try await store.claimMerchantKey(keys[3], for: elsewhere, now: Self.now) == .holds)
            let answers = try await store.claimMerchantKeys(keys.indices.map { (key: keys[$0], order: inTwo[$0]) }, now: Self.now)
            #expect(try answers.map { try $0.get() } == [.holds, .holds, .reservedFor(Self.one), .heldBy(elsewhere)])
            #expect(try await store.merchantKeyEntry(keys[0], consistency: .strong)?.holder == inTwo[0])
            let fresh = try #require(try await store.merchantKeyEntry(keys[1], consistency: .strong))
            #expect(fresh.holder == inTwo[1] && fresh.owner == Self.two)
            #expect(try await store.merchantKeyEntry(keys[2], consistency: .strong)?.holder == nil)
            #expect(try await store.claimMerchantKeys([(key: keys[1], order: inTwo[1])], now: Self.now).map { try $0.get() } == [.holds])
        }
    }

    @Test("a create in its key's slot cell binds, inserts and claims in one transaction; known keys go where they are bound", arguments: StoreKind.allCases)
    func boundCreates(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            func order(_ sequence: Int64, _ outTradeNo: String) throws -> Order {
                var order = try OrderStoreSuite.order(sequence: sequence, merchant: "mc", outTradeNo: outTradeNo)
                order.id = try OrderID(cell: Self.two, createdAt: Self.now, sequence: sequence)
                order.keyStatus = .verified
                return order
            }
            let keys = ["fresh", "reserved-here", "reserved-there", "twice", "frozen"].map { MerchantKey(merchantID: "mc", outTradeNo: $0) }
            _ = try await store.bindMerchantKey(keys[1], candidate: Self.two, attempt: 5, now: Self.now)
            _ = try await store.bindMerchantKey(keys[2], candidate: Self.three, attempt: 6, now: Self.now)
            let frozenKey = Self.keys(inSlot: 11, count: 1, merchant: "mc")[0]
            try await store.setIndexSlots([11], frozen: true)
            let creates = [
                BoundInsert(order: try order(1, "fresh"), attempt: 1), BoundInsert(order: try order(2, "reserved-here"), attempt: 2),
                BoundInsert(order: try order(3, "reserved-there"), attempt: 3), BoundInsert(order: try order(4, "twice"), attempt: 4),
                BoundInsert(order: try order(5, "twice"), attempt: 5), BoundInsert(order: try order(6, frozenKey.outTradeNo), attempt: 6),
            ]
            let outcomes = try await store.insertBound(creates, now: Self.now)
            guard case .inserted(let fresh) = try outcomes[0].get(), case .inserted(let reserved) = try outcomes[1].get(),
                case .boundElsewhere(let there) = try outcomes[2].get(), case .inserted(let first) = try outcomes[3].get(),
                case .existing(let again) = try outcomes[4].get()
            else {
                Issue.record("outcomes: \(outcomes)")
                return
            }
            #expect(there == MerchantKeyBinding(owner: Self.three, holder: nil, movableByCaller: false))
            #expect(again.id == first.id)
            #expect(throws: OrderError.indexSlotFrozen(11)) { try outcomes[5].get() }
            for order in [fresh, reserved, first] {
                #expect(try await store.order(order.id, consistency: .strong)?.keyStatus == .verified)
                let entry = try #require(try await store.merchantKeyEntry(order.merchantKey, consistency: .strong))
                #expect(entry.holder == order.id && entry.owner == Self.two)
            }
            #expect(try await store.order(MerchantKey(merchantID: "mc", outTradeNo: "reserved-there"), consistency: .strong) == nil)
            #expect(try await store.order(frozenKey, consistency: .strong) == nil)
            // An order made without the index (no entry): a create meets it, and leaves its key reserved for this
            // cell, for the reconciler to claim for that order.
            var unindexed = try order(20, "made-without-index")
            unindexed.keyStatus = .unindexed
            _ = try await store.insert(unindexed)
            let met = try await store.insertBound([BoundInsert(order: try order(21, "made-without-index"), attempt: 21)], now: Self.now)
            guard case .existing(let earlier) = try met[0].get() else {
                Issue.record("\(met)")
                return
            }
            #expect(earlier.id == unindexed.id && earlier.keyStatus == .unindexed)
            let reservedEntry = try #require(try await store.merchantKeyEntry(unindexed.merchantKey, consistency: .strong))
            #expect(reservedEntry.holder == nil && reservedEntry.owner == Self.two)
            #expect(try await store.claimMerchantKey(unindexed.merchantKey, for: unindexed.id, now: Self.now) == .holds)
            // A repeat later meets its order, as it was.
            let repeated = try await store.insertBound([BoundInsert(order: try order(7, "fresh"), attempt: 9)], now: Self.now)
            guard case .existing(let met) = try repeated[0].get() else {
                Issue.record("\(repeated)")
                return
            }
            #expect(met.id == fresh.id)
        }
    }

    @Test("bound batches of the same new keys in opposite orders store each key's order once, with its event and entry", arguments: StoreKind.allCases)
    func boundBatchesInOppositeOrders(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            func creates(_ keys: [String], from sequence: Int64) throws -> [BoundInsert] {
                try keys.enumerated().map { offset, outTradeNo in
                    var order = try OrderStoreSuite.order(sequence: sequence + Int64(offset), merchant: "mo", outTradeNo: outTradeNo)
                    order.id = try OrderID(cell: Self.two, createdAt: Self.now, sequence: sequence + Int64(offset))
                    order.keyStatus = .verified
                    return BoundInsert(order: order, attempt: UInt64(sequence) + UInt64(offset))
                }
            }
            for round in 0..<10 as Range<Int64> {
                let keys = (0..<8 as Range<Int64>).map { "b-\(round)-\($0)" }
                async let first = store.insertBound(try creates(keys, from: round * 100 + 1), now: Self.now)
                async let second = store.insertBound(try creates(keys.reversed(), from: round * 100 + 51), now: Self.now)
                let outcomes = try await (first + second).map { try $0.get() }
                let stored = outcomes.compactMap { if case .inserted(let order) = $0 { order } else { nil } }
                let met = outcomes.compactMap { if case .existing(let order) = $0 { order.id } else { nil } }
                #expect(stored.count == keys.count && Set(stored.map(\.outTradeNo)) == Set(keys))
                #expect(Set(met) == Set(stored.map(\.id)))
                for order in stored {
                    #expect(try await store.events(of: order.id).map(\.kind) == [.created])
                    #expect(try await store.merchantKeyEntry(order.merchantKey, consistency: .strong)?.holder == order.id)
                }
            }
            #expect(try await store.orderCount() == 80)
        }
    }

    @Test("the reconciler's write lands only on the revision it read", arguments: StoreKind.allCases)
    func settleIsConditional(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            _ = try await store.bindMerchantKey(Self.key, candidate: Self.one, attempt: 7, now: Self.now)
            _ = try await store.moveMerchantKey(Self.key, from: Self.one, to: Self.two, attempt: 7, now: Self.now)
            let read = try #require(try await store.merchantKeyEntry(Self.key, consistency: .strong))
            let left = try OrderID(cell: Self.one, createdAt: Self.now, sequence: 9)
            let (settled, rivals) = MerchantKeyIndex.settle(read, ownerOrder: nil, abandonedOrders: [left], now: Self.now)
            #expect(settled.owner == Self.one && settled.holder == left && settled.abandoned.isEmpty && rivals.isEmpty)
            func write(_ entry: MerchantKeyEntry, ifRevision revision: Int) async throws -> Bool {
                try await store.updateMerchantKey(entry.key) { current in
                    guard let current, current.revision == revision else { return .init(answer: false, write: nil) }
                    return .init(answer: true, write: entry)
                }
            }
            #expect(try await write(settled, ifRevision: read.revision - 1) == false)
            #expect(try await write(settled, ifRevision: read.revision) == true)
            #expect(try await write(settled, ifRevision: read.revision) == false)
            #expect(try await store.merchantKeyEntry(Self.key, consistency: .strong) == settled)
            #expect(try await store.movedMerchantKeys(updatedBefore: Self.now.adding(seconds: 60), limit: 10).isEmpty)
        }
    }

    @Test("an order keeps its key status; unverified ones are listed until verified or marked; pay needs the key verified or claimed", arguments: StoreKind.allCases)
    func keyStatusOfOrders(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            var reserved = try OrderStoreSuite.order(sequence: 1)
            reserved.keyStatus = .reserved
            var unindexed = try OrderStoreSuite.order(sequence: 2)
            unindexed.keyStatus = .unindexed
            _ = try await store.insertBatch([reserved, unindexed])
            #expect(try await store.order(reserved.id, consistency: .strong)?.keyStatus == .reserved)
            #expect(Set(try await store.unverifiedOrders(createdBefore: Self.now.adding(seconds: 1), limit: 10).map(\.id)) == [reserved.id, unindexed.id])
            #expect(try await store.unverifiedOrders(createdBefore: Self.now, limit: 10).isEmpty)

            await #expect(throws: OrderError.self) {
                try await store.apply(.pay(paymentID: "p1", amount: 1000), to: reserved.id, now: Self.now)
            }
            let paid = try await store.apply(.pay(paymentID: "p1", amount: 1000, keyClaimed: true), to: reserved.id, now: Self.now)
            #expect(paid.order.status == .paid && paid.order.keyStatus == .verified)
            #expect(try await store.order(reserved.id, consistency: .strong)?.keyStatus == .verified)
            #expect(try await store.unverifiedOrders(createdBefore: Self.now.adding(seconds: 1), limit: 10).map(\.id) == [unindexed.id])

            let closed = try await store.apply(.closeDuplicate(holder: reserved.id), to: unindexed.id, now: Self.now)
            #expect(closed.order.status == .closed && closed.order.closeReason == .duplicate && closed.order.keyStatus == .duplicate)
            #expect(try await store.events(of: unindexed.id).last?.reference == reserved.id.description)
            try await store.setKeyStatus(.duplicate, of: unindexed.id)
            #expect(try await store.unverifiedOrders(createdBefore: Self.now.adding(seconds: 1), limit: 10).isEmpty)
        }
    }

    /// Keys of two slots, for the slot-move tests: `count` keys whose slot is `slot`.
    static func keys(inSlot slot: Int, count: Int, merchant: String = "mv") -> [MerchantKey] {
        var keys: [MerchantKey] = []
        var n = 0
        while keys.count < count {
            let key = MerchantKey(merchantID: merchant, outTradeNo: "t-\(n)")
            if key.indexSlot == slot { keys.append(key) }
            n += 1
        }
        return keys
    }

    @Test("a frozen slot refuses every index write and keeps answering reads; its entries are exported, imported and dropped", arguments: StoreKind.allCases)
    func frozenSlotsAreCopiedNotWritten(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            let moving = Self.keys(inSlot: 5, count: 5)
            let staying = Self.keys(inSlot: 6, count: 3)
            for (n, key) in (moving + staying).enumerated() {
                _ = try await store.bindMerchantKey(key, candidate: Self.one, attempt: UInt64(n + 1), now: Self.now)
            }
            // The copy of a slot that is not frozen is refused: its entries could still change.
            await #expect(throws: OrderError.self) { try await store.frozenMerchantKeys(inSlots: [5], after: nil, limit: 100) }

            try await store.setIndexSlots([5], frozen: true)
            try await store.setIndexSlots([5], frozen: true)  // idempotent
            let known = moving[0]
            let fresh = Self.keys(inSlot: 5, count: 6)[5]
            let order = try OrderID(cell: Self.one, createdAt: Self.now, sequence: 1)
            // Writes of the frozen slot are refused with index_unavailable; a bind of a known key writes nothing and is answered.
            let refused = try await store.bindMerchantKeys(
                [MerchantKeyBindRequest(key: fresh, candidate: Self.two, attempt: 50), MerchantKeyBindRequest(key: known, candidate: Self.two, attempt: 51),
                 MerchantKeyBindRequest(key: staying[0], candidate: Self.two, attempt: 52)],
                now: Self.now
            )
            #expect(throws: OrderError.indexSlotFrozen(5)) { try refused[0].get() }
            #expect(try refused[1].get() == MerchantKeyBinding(owner: Self.one, holder: nil, movableByCaller: false))
            #expect(try refused[2].get().owner == Self.one)
            await #expect(throws: OrderError.indexSlotFrozen(5)) { try await store.claimMerchantKey(known, for: order, now: Self.now) }
            await #expect(throws: OrderError.indexSlotFrozen(5)) { try await store.claimMerchantKey(fresh, for: order, now: Self.now) }
            await #expect(throws: OrderError.indexSlotFrozen(5)) {
                try await store.moveMerchantKey(known, from: Self.one, to: Self.two, attempt: 1, now: Self.now)
            }
            // In a batch of claims, the frozen slot's fails alone.
            let batch = try await store.claimMerchantKeys([(key: staying[2], order: order), (key: known, order: order)], now: Self.now)
            #expect(try batch[0].get() == .holds)
            #expect(throws: OrderError.indexSlotFrozen(5)) { try batch[1].get() }
            #expect(try await store.frozenIndexSlots() == [5])
            #expect(try await store.merchantKeyEntry(fresh, consistency: .strong) == nil)
            #expect(try await store.merchantKeyEntry(known, consistency: .strong)?.holder == nil)
            // Other slots are written as ever.
            #expect(try await store.claimMerchantKey(staying[1], for: order, now: Self.now) == .holds)

            // The export pages through every key, keeping the frozen slot's.
            var exported: [MerchantKeyEntry] = []
            var after: MerchantKey?
            var pages = 0
            repeat {
                let page = try await store.frozenMerchantKeys(inSlots: [5], after: after, limit: 2)
                exported += page.entries
                after = page.next
                pages += 1
            } while after != nil
            #expect(Set(exported.map(\.key)) == Set(moving) && exported.count == moving.count && pages >= 4)

            // Imported elsewhere as they are; dropped here, but only the frozen slot's.
            try await kind.withStore { target, _ in
                try await target.importMerchantKeys(exported)
                try await target.importMerchantKeys(exported)  // idempotent
                for entry in exported { #expect(try await target.merchantKeyEntry(entry.key, consistency: .strong) == entry) }
            }
            #expect(try await store.deleteFrozenMerchantKeys(moving + staying) == moving.count)
            #expect(try await store.merchantKeyEntry(known, consistency: .strong) == nil)
            #expect(try await store.merchantKeyEntry(staying[0], consistency: .strong) != nil)

            // Thawed, the slot is written again.
            try await store.setIndexSlots([5], frozen: false)
            #expect(try await store.claimMerchantKey(fresh, for: order, now: Self.now) == .holds)
        }
    }

    @Test("once a freeze returns, no write of the slot commits, though writers race it", arguments: StoreKind.allCases)
    func freezeWaitsForWritesUnderWay(kind: StoreKind) async throws {
        try await kind.withStore { store, _ in
            let keys = Self.keys(inSlot: 9, count: 2000, merchant: "race")
            let next = Shared(0)
            let outcomes = Shared((written: 0, refused: 0))
            let stop = Shared(false)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        while !stop.withLock({ $0 }) {
                            let n = next.withLock { n in defer { n += 1 }; return n }
                            guard n < keys.count else { return }
                            let key = keys[n]
                            do {
                                if writer == 2 {
                                    var order = try OrderStoreSuite.order(sequence: Int64(n + 1), merchant: key.merchantID, outTradeNo: key.outTradeNo)
                                    order.id = try OrderID(cell: Self.one, createdAt: Self.now, sequence: Int64(n + 1))
                                    order.keyStatus = .verified
                                    _ = try await store.insertBound([BoundInsert(order: order, attempt: UInt64(n + 1))], now: Self.now)[0].get()
                                } else if writer % 2 == 0 {
                                    let answer = try await store.bindMerchantKeys(
                                        [MerchantKeyBindRequest(key: key, candidate: Self.one, attempt: UInt64(n + 1))], now: Self.now
                                    )
                                    _ = try answer[0].get()
                                } else {
                                    let order = try OrderID(cell: Self.one, createdAt: Self.now, sequence: Int64(n + 1))
                                    _ = try await store.claimMerchantKey(key, for: order, now: Self.now)
                                }
                                outcomes.withLock { $0.written += 1 }
                            } catch let refusal as OrderError where refusal == .indexSlotFrozen(9) {
                                outcomes.withLock { $0.refused += 1 }
                            }
                        }
                    }
                }
                while outcomes.withLock({ $0.written }) < 20 { try await Task.sleep(for: .milliseconds(5)) }
                try await store.setIndexSlots([9], frozen: true)
                let atFreeze = try await Self.export(slot: 9, of: store)
                while outcomes.withLock({ $0.refused }) < 20 && next.withLock({ $0 }) < keys.count { try await Task.sleep(for: .milliseconds(5)) }
                stop.withLock { $0 = true }
                try await group.waitForAll()
                #expect(try await Self.export(slot: 9, of: store) == atFreeze)
                #expect(atFreeze.count == outcomes.withLock { $0.written })
                #expect(outcomes.withLock { $0.refused } >= 1)
            }
        }
    }

    static func export(slot: Int, of store: any OrderStore) async throws -> [MerchantKeyEntry] {
        var entries: [MerchantKeyEntry] = []
        var after: MerchantKey?
        repeat {
            let page = try await store.frozenMerchantKeys(inSlots: [slot], after: after, limit: 100)
            entries += page.entries
            after = page.next
        } while after != nil
        return entries
    }
}

/// A value shared by a test's tasks.
final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func withLock<T>(_ body: (inout Value) -> T) -> T { value.withLock { body(&$0) } }
}
