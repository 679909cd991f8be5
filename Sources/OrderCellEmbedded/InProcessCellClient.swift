import CellService
import OrderCellPlatform
import OrderModel
import OrderProxy

/// The proxy's client of a cell service running in the same process.
///
/// It bounds its own calls: in process, a call can only outlast the
/// proxy's deadline under a drill latency or late-answer fault (waits for the database are
/// bounded by SQLite's busy timeout, and a create's wait for its turn in a
/// group commit by the cell service's maximum wait), so only then does it
/// pay for a deadline around the call.
struct InProcessCellClient: CellClient {
    let service: CellService
    let timeout: Duration

    var enforcesOwnDeadline: Bool { true }

    private func bounded<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        switch service.currentFault {
        case .none, .fail: return try await body()
        case .latency: return try await withDeadline(timeout, body)
        case .lateAnswer:
            return try await withDeadline(timeout) { [service] in
                let answer = try await body()
                if let delay = service.faultMet(at: .answer).answerDelay { try await Task.sleep(for: delay) }
                return answer
            }
        }
    }

    func create(_ request: CreateOrderRequest, keyStatus: MerchantKeyStatus) async throws -> CreateOrderResult {
        try await bounded { [service] in try await service.create(request, keyStatus: keyStatus) }
    }

    func createBound(_ request: CreateOrderRequest, attempt: UInt64) async throws -> BoundCreateResult {
        try await bounded { [service] in try await service.createBound(request, attempt: attempt) }
    }

    func apply(_ command: OrderCommand, to id: OrderID, ownedBy merchant: String?) async throws -> OrderCommandResult {
        try await bounded { [service] in try await service.apply(command, to: id, ownedBy: merchant) }
    }

    func order(_ id: OrderID, consistency: ReadConsistency) async throws -> Order {
        try await bounded { [service] in try await service.order(id, consistency: consistency) }
    }

    func refunds(of id: OrderID, ownedBy merchant: String?) async throws -> [Refund] {
        try await bounded { [service] in try await service.refunds(of: id, ownedBy: merchant) }
    }

    func events(of id: OrderID, ownedBy merchant: String?) async throws -> [OrderEvent] {
        try await bounded { [service] in try await service.events(of: id, ownedBy: merchant) }
    }

    func bindMerchantKey(_ key: MerchantKey, candidate: CellID, attempt: UInt64) async throws -> MerchantKeyBinding {
        try await bounded { [service] in try await service.bindMerchantKey(key, candidate: candidate, attempt: attempt) }
    }

    func moveMerchantKey(_ key: MerchantKey, from: CellID, to: CellID, attempt: UInt64) async throws -> MerchantKeyBinding {
        try await bounded { [service] in try await service.moveMerchantKey(key, from: from, to: to, attempt: attempt) }
    }

    func claimMerchantKey(_ key: MerchantKey, for order: OrderID) async throws -> MerchantKeyClaim {
        try await bounded { [service] in try await service.claimMerchantKey(key, for: order) }
    }

    func merchantKeyEntry(_ key: MerchantKey, consistency: ReadConsistency) async throws -> MerchantKeyEntry? {
        try await bounded { [service] in try await service.merchantKeyEntry(key, consistency: consistency) }
    }

    func settleMerchantKey(_ settled: MerchantKeyEntry, ifRevision revision: Int) async throws -> Bool {
        try await bounded { [service] in try await service.settleMerchantKey(settled, ifRevision: revision) }
    }

    func movedMerchantKeys(updatedBefore cutoff: Timestamp, limit: Int) async throws -> [MerchantKeyEntry] {
        try await bounded { [service] in try await service.movedMerchantKeys(updatedBefore: cutoff, limit: limit) }
    }

    func order(_ key: MerchantKey, consistency: ReadConsistency) async throws -> Order {
        try await bounded { [service] in
            guard let order = try await service.order(key, consistency: consistency) else {
                throw OrderError(.orderNotFound, "no order \(key) in cell \(service.cell)")
            }
            return order
        }
    }

    func unverifiedOrders(createdBefore cutoff: Timestamp, after: OrderListPosition?, limit: Int) async throws -> [Order] {
        try await bounded { [service] in try await service.unverifiedOrders(createdBefore: cutoff, after: after, limit: limit) }
    }

    func setKeyStatus(_ status: MerchantKeyStatus, of ids: [OrderID]) async throws {
        try await bounded { [service] in try await service.setKeyStatus(status, of: ids) }
    }

    func claimMerchantKeys(_ claims: [(key: MerchantKey, order: OrderID)]) async throws -> [Result<MerchantKeyClaim, OrderError>] {
        let items = claims.map { MerchantKeyClaimItem(key: $0.key, order: $0.order) }
        return try await bounded { [service] in try await service.claimMerchantKeys(items.map { ($0.key, $0.order) }) }
    }
}

extension InProcessCellClient {
    func setIndexSlots(_ slots: [Int], frozen: Bool) async throws {
        try await bounded { [service] in try await service.setIndexSlots(slots, frozen: frozen) }
    }

    func frozenMerchantKeys(inSlots slots: [Int], after: MerchantKey?, limit: Int) async throws -> MerchantKeyPage {
        try await bounded { [service] in try await service.frozenMerchantKeys(inSlots: Set(slots), after: after, limit: limit) }
    }

    func importMerchantKeys(_ entries: [MerchantKeyEntry]) async throws {
        try await bounded { [service] in try await service.importMerchantKeys(entries) }
    }

    func deleteFrozenMerchantKeys(_ keys: [MerchantKey]) async throws -> Int {
        try await bounded { [service] in try await service.deleteFrozenMerchantKeys(keys) }
    }

    func notifierStatus(_ status: NotificationStatus?, after: String?, limit: Int) async throws -> NotifierStatusPage {
        try await bounded { [service] in try await service.notifierStatus(status, after: after, limit: limit) }
    }

    func redeliverNotifications(_ eventIDs: [String]?, by operator: String) async throws -> Int {
        try await bounded { [service] in try await service.redeliverNotifications(eventIDs, by: `operator`) }
    }
}

/// A claim as a Sendable value (tuples of Sendable values cross task boundaries only as such).
private struct MerchantKeyClaimItem: Sendable {
    var key: MerchantKey
    var order: OrderID
}
