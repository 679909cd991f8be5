import CellStorage
import Foundation
import OrderModel
import Synchronization
import Testing

@testable import CellService

/// A clock tests move by hand.
final class ManualClock: Sendable {
    private let current: Mutex<Timestamp>
    init(_ start: Timestamp) { current = Mutex(start) }
    var now: Timestamp { current.withLock { $0 } }
    func advance(seconds: Int64) { current.withLock { $0 = $0.adding(seconds: seconds) } }
}

@Suite("Cell service")
struct CellServiceTests {
    let clock = ManualClock(Timestamp(secondsSinceEpoch: 1_795_301_599))

    func makeService(cell: Int = 5) async throws -> CellService {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-cell-\(UUID().uuidString).sqlite").path
        let store = try await SQLiteOrderStore.open(path: path)
        let clock = self.clock
        // Suites share two cores: a create may wait longer than production's 500 ms for its group commit.
        return CellService(
            cell: CellID(cell)!, store: store, sequenceSegmentSize: 10, groupCommit: GroupCommitConfiguration(maximumWait: .seconds(10)),
            clock: { clock.now }
        )
    }

    func request(_ outTradeNo: String, amount: Int64 = 500, description: String? = nil, expire: Int64? = nil) throws -> CreateOrderRequest {
        try CreateOrderRequest(merchantID: "shop", outTradeNo: outTradeNo, amount: amount, currency: "EUR", description: description, expireSeconds: expire)
    }

    @Test("a caller acting for a merchant meets another merchant's order as one that does not exist")
    func ownership() async throws {
        let service = try await makeService()
        let order = try await service.create(try request("owned-1")).order
        let missing = try OrderID(cell: order.id.cell, createdAt: order.createdAt, sequence: 999_999)
        func code(_ call: () async throws -> Void) async -> OrderErrorCode? {
            do { try await call() } catch let error as OrderError { return error.code } catch { return nil }
            return nil
        }
        // Another merchant: exactly what an order that does not exist gets.
        for id in [order.id, missing] {
            #expect(await code { _ = try await service.apply(.close, to: id, ownedBy: "another-shop") } == .orderNotFound)
            #expect(await code { _ = try await service.refunds(of: id, ownedBy: "another-shop") } == .orderNotFound)
            #expect(await code { _ = try await service.events(of: id, ownedBy: "another-shop") } == .orderNotFound)
        }
        #expect(try await service.order(order.id, consistency: .strong).status == .created)
        // Its own merchant, and a caller acting for none, are served.
        #expect(try await service.events(of: order.id, ownedBy: "shop").count >= 1)
        #expect(try await service.apply(.close, to: order.id, ownedBy: "shop").order.status == .closed)
        #expect(try await service.refunds(of: order.id).isEmpty)
    }

    @Test("a cell refuses index calls for keys of slots it does not hold by its routing release")
    func indexCallsOnlyForHeldSlots() async throws {
        let service = try await makeService()
        let mine = MerchantKey(merchantID: "shop", outTradeNo: "mine")
        let other = (0...).lazy.map { MerchantKey(merchantID: "shop", outTradeNo: "other-\($0)") }.first { $0.indexSlot != mine.indexSlot }!
        // Not told yet: no check (a cell service made by hand).
        _ = try await service.bindMerchantKey(other, candidate: CellID(5)!, attempt: 1)
        service.holdIndexSlots([mine.indexSlot])
        #expect(try await service.bindMerchantKey(mine, candidate: CellID(5)!, attempt: 2).owner == CellID(5)!)
        for call in [
            { _ = try await service.bindMerchantKey(other, candidate: CellID(5)!, attempt: 3) },
            { _ = try await service.merchantKeyEntry(other, consistency: .strong) },
            { _ = try await service.claimMerchantKey(other, for: try OrderID(cell: CellID(5)!, createdAt: clock.now, sequence: 1)) },
            { _ = try await service.moveMerchantKey(other, from: CellID(5)!, to: CellID(6)!, attempt: 1) },
        ] as [@Sendable () async throws -> Void] {
            do {
                try await call()
                Issue.record("an index call for a slot the cell does not hold was answered")
            } catch let error as OrderError {
                #expect(error.code == .indexUnavailable)
            }
        }
    }

    @Test("a frozen slot's copies left behind are no answer: a missing entry is index_unavailable, moved keys are not listed, imports into held slots refused")
    func frozenSlotsAnswerNothing() async throws {
        let service = try await makeService()
        let moved = MerchantKey(merchantID: "shop", outTradeNo: "moved")
        _ = try await service.bindMerchantKey(moved, candidate: CellID(5)!, attempt: 7)
        _ = try await service.moveMerchantKey(moved, from: CellID(5)!, to: CellID(6)!, attempt: 7)
        clock.advance(seconds: 60)
        #expect(try await service.movedMerchantKeys(updatedBefore: clock.now, limit: 10).map(\.key) == [moved])
        let entry = try #require(try await service.merchantKeyEntry(moved, consistency: .strong))

        try await service.setIndexSlots([moved.indexSlot], frozen: true)
        #expect(try await service.movedMerchantKeys(updatedBefore: clock.now, limit: 10).isEmpty)
        #expect(try await service.merchantKeyEntry(moved, consistency: .strong) == entry, "a frozen slot's entries are read as ever")
        #expect(try await service.deleteFrozenMerchantKeys([moved]) == 1)
        await #expect(throws: OrderError.indexSlotFrozen(moved.indexSlot)) { try await service.merchantKeyEntry(moved, consistency: .strong) }

        service.holdIndexSlots([moved.indexSlot])
        await #expect(throws: OrderError.self) { try await service.importMerchantKeys([entry]) }
        service.holdIndexSlots([])
        try await service.importMerchantKeys([entry])
        await #expect(throws: OrderError.self) { try await service.setIndexSlots([256], frozen: true) }
    }

    @Test func createIsIdempotentPerMerchantAndOutTradeNo() async throws {
        let service = try await makeService()
        let first = try await service.create(try request("a-1"))
        #expect(first.created)
        #expect(first.order.cellID == CellID(5)! && first.order.id.cell == CellID(5)!)
        let again = try await service.create(try request("a-1"))
        #expect(!again.created && again.order == first.order)
        do {
            _ = try await service.create(try request("a-1", amount: 501))
            Issue.record("a different body must conflict")
        } catch let error as OrderError {
            #expect(error.code == .outTradeNoConflict)
        }
        let other = try await service.create(try request("a-2"))
        #expect(other.order.id.sequence > first.order.id.sequence, "sequence numbers only grow (a replay may spend one)")
    }

    @Test func concurrentCreatesOfOneOutTradeNoMakeOneOrder() async throws {
        let service = try await makeService()
        let request = try request("race")
        let ids = try await withThrowingTaskGroup(of: OrderID.self) { group in
            for _ in 0..<16 { group.addTask { try await service.create(request).order.id } }
            return try await group.reduce(into: Set<OrderID>()) { $0.insert($1) }
        }
        #expect(ids.count == 1)
        #expect(try await service.store.orderCount() == 1)
    }

    @Test func sweepClosesOnlyExpiredUnpaidOrders() async throws {
        let service = try await makeService()
        let unpaid = try await service.create(try request("u", expire: 60)).order
        let paid = try await service.create(try request("p", expire: 60)).order
        _ = try await service.apply(.pay(paymentID: "pay", amount: 500, keyClaimed: true), to: paid.id)
        #expect(try await service.sweepExpiredOrders() == 0)
        clock.advance(seconds: 60)
        #expect(try await service.sweepExpiredOrders() == 1)
        let closed = try await service.order(unpaid.id, consistency: .strong)
        #expect(closed.status == .closed && closed.closeReason == .expired)
        #expect(try await service.order(paid.id, consistency: .strong).status == .paid)
        #expect(try await service.events(of: unpaid.id).map(\.kind) == [.created, .expired])
    }

    @Test func drillFaultsFailEveryCallUntilCleared() async throws {
        let service = try await makeService()
        let order = try await service.create(try request("f")).order
        service.inject(.fail)
        await #expect(throws: CellFailure.self) { _ = try await service.create(try request("g")) }
        await #expect(throws: CellFailure.self) { _ = try await service.order(order.id, consistency: .strong) }
        service.inject(.none)
        #expect(try await service.order(order.id, consistency: .strong) == order)
    }

    @Test func aCountedDrillFaultHitsThatManyCallsAndClearsItself() async throws {
        let service = try await makeService()
        let order = try await service.create(try request("f")).order
        service.inject(.fail, calls: 2)
        await #expect(throws: CellFailure.self) { _ = try await service.order(order.id, consistency: .strong) }
        #expect(service.currentFault == .fail)
        await #expect(throws: CellFailure.self) { _ = try await service.create(try request("g")) }
        #expect(service.currentFault == CellFault.none)
        #expect(try await service.order(order.id, consistency: .strong) == order)
        // A late answer is met where a call answers, not where it starts: a call's start does not count it.
        service.inject(.lateAnswer(milliseconds: 10), calls: 1)
        #expect(service.faultMet(at: .start) == CellFault.none)
        #expect(service.faultMet(at: .answer) == .lateAnswer(milliseconds: 10))
        #expect(service.faultMet(at: .answer) == CellFault.none)
    }

    @Test func ordersOfAnotherCellAreNotFound() async throws {
        let service = try await makeService(cell: 5)
        let foreign = try OrderID(cell: CellID(6)!, createdAt: clock.now, sequence: 1)
        do {
            _ = try await service.order(foreign, consistency: .strong)
            Issue.record("expected order_not_found")
        } catch let error as OrderError {
            #expect(error.code == .orderNotFound)
        }
    }

    @Test("the sweeper deletes the health checker's orders once they are a day old, and never a merchant's")
    func probeOrdersArePurgedAfterADay() async throws {
        let service = try await makeService()
        let probe = try await service.create(
            try CreateOrderRequest(merchantID: ProbeMerchant.id, outTradeNo: "probe-1", amount: 1, currency: "CNY", description: nil, expireSeconds: nil)
        ).order
        let merchants = try await service.create(try request("kept-1")).order
        let sweeper = ExpirySweeper(cells: [service])
        #expect(await sweeper.purgeProbeOrdersOnce() == 0)
        clock.advance(seconds: 86_401)
        #expect(await sweeper.purgeProbeOrdersOnce() == 1)
        await #expect { try await service.order(probe.id, consistency: .strong) } throws: { ($0 as? OrderError)?.code == .orderNotFound }
        #expect(try await service.order(merchants.id, consistency: .strong).id == merchants.id)
    }
}
