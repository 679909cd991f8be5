import OrderModel

/// The storage of one cell: orders, refunds, events and the cell's sequence.
///
/// Every implementation passes the same store test suite. Each method is
/// one transaction; ``apply(_:to:now:)`` reads the order, asks the
/// ``OrderStateMachine`` and persists its decision atomically, so that
/// concurrent commands on one order are serialised by the store.
public protocol OrderStore: Sendable {
    /// Inserts a new order and its creation event, unless an order with the
    /// same `(merchant_id, out_trade_no)` exists; then returns that one.
    func insert(_ order: Order) async throws -> StoreInsertOutcome

    /// Inserts several new orders in one transaction (group commit): all of
    /// them or none, outcomes in the same order. An order whose
    /// `(merchant_id, out_trade_no)` exists — in the store, or earlier in
    /// the same batch — comes back as `.existing`.
    func insertBatch(_ orders: [Order]) async throws -> [StoreInsertOutcome]

    /// Whether ``insertBatch(_:)`` is cheaper than inserting one order after
    /// the other (so the cell service groups concurrent creates).
    var batchesInserts: Bool { get }

    /// The order with this id.
    func order(_ id: OrderID, consistency: ReadConsistency) async throws -> Order?

    /// The order a merchant created in this cell with this `out_trade_no`.
    func order(_ key: MerchantKey, consistency: ReadConsistency) async throws -> Order?

    /// Applies a command in one transaction.
    ///
    /// - Throws: ``OrderError`` with `order_not_found` or the state machine's refusal.
    func apply(_ command: OrderCommand, to id: OrderID, now: Timestamp) async throws -> OrderStateMachine.Decision

    /// The order's refunds, oldest first.
    func refunds(of id: OrderID) async throws -> [Refund]

    /// The order's audit trail, oldest first.
    func events(of id: OrderID) async throws -> [OrderEvent]

    /// The cell's event feed: up to `limit` events after `position`, in the
    /// order their transactions committed, each with the position past it.
    /// Never an event that a transaction still running could precede: a
    /// reader that moves to the last position it got skips nothing.
    func eventFeed(after position: EventFeedPosition, limit: Int) async throws -> [FeedEvent]

    /// Unpaid orders whose expiry is at or before `now`, earliest first.
    func expiredOrders(at now: Timestamp, limit: Int) async throws -> [OrderID]

    /// Deletes up to `limit` of `merchantID`'s orders created before
    /// `cutoff`, with their refunds and events, in one transaction; returns
    /// how many orders it deleted. Only for the health checker's synthetic
    /// orders (``ProbeMerchant``): merchants' orders are never deleted.
    func purgeOrders(of merchantID: String, createdBefore cutoff: Timestamp, limit: Int) async throws -> Int

    /// Reserves the next `size` values of the cell's order sequence.
    /// Values are never handed out twice, even across crashes.
    func reserveSequenceSegment(size: Int64) async throws -> ClosedRange<Int64>

    /// Number of orders in the cell.
    func orderCount() async throws -> Int

    // MARK: Key status of orders

    /// Orders created before `cutoff` that do not hold their key yet
    /// (``MerchantKeyStatus/reserved`` or ``MerchantKeyStatus/unindexed``),
    /// oldest first (by creation time, then id), after `after`: the reconciler's work.
    func unverifiedOrders(createdBefore cutoff: Timestamp, after: OrderListPosition?, limit: Int) async throws -> [Order]

    /// Records what the index said of orders' keys (the reconciler's
    /// verdict: ``MerchantKeyStatus/verified`` or ``MerchantKeyStatus/duplicate``), in one transaction.
    func setKeyStatus(_ status: MerchantKeyStatus, of ids: [OrderID]) async throws

    // MARK: Merchant-key index (the entries of the slots this cell holds)

    /// Reads the key's entry, asks `decide`, and writes the entry it
    /// returns, in one transaction; returns the decision's answer.
    func updateMerchantKey<Answer: Sendable>(
        _ key: MerchantKey, _ decide: @escaping @Sendable (MerchantKeyEntry?) -> MerchantKeyIndex.Decision<Answer>
    ) async throws -> Answer

    /// Binds several keys in one transaction (group commit of binds): the
    /// answers in the same order. A key that comes twice is bound once; the
    /// second finds the first's reservation. A new key of a frozen slot
    /// fails alone (``OrderError/indexSlotFrozen(_:)``), not the batch.
    func bindMerchantKeys(_ requests: [MerchantKeyBindRequest], now: Timestamp) async throws -> [Result<MerchantKeyBinding, OrderError>]

    /// Whether ``bindMerchantKeys(_:now:)`` is cheaper than one bind after the other.
    var batchesBinds: Bool { get }

    /// Creates whose key's index slot this cell holds, each bound, inserted
    /// and claimed in one transaction for all of them
    /// (``MerchantKeyIndex/boundCreate(_:key:cell:order:attempt:now:)``): a
    /// new order is stored ``MerchantKeyStatus/verified``, holding its key.
    /// A key of a frozen slot that needs a write fails alone.
    func insertBound(_ creates: [BoundInsert], now: Timestamp) async throws -> [Result<BoundInsertOutcome, OrderError>]

    /// Claims several keys, each for its order, in one transaction (the reconciler's pages): the answers in the same order.
    /// A key of a frozen slot fails alone (``OrderError/indexSlotFrozen(_:)``), not the batch.
    func claimMerchantKeys(_ claims: [(key: MerchantKey, order: OrderID)], now: Timestamp) async throws -> [Result<MerchantKeyClaim, OrderError>]

    /// The key's entry.
    func merchantKeyEntry(_ key: MerchantKey, consistency: ReadConsistency) async throws -> MerchantKeyEntry?

    /// Entries whose key was moved away from a cell (``MerchantKeyEntry/abandoned``
    /// not empty) and unchanged since before `cutoff`, oldest first: the reconciler's work.
    func movedMerchantKeys(updatedBefore cutoff: Timestamp, limit: Int) async throws -> [MerchantKeyEntry]

    // MARK: Moving index slots (docs/merchant-keys.md, "Moving slots")

    /// Freezes (or thaws) index slots in this cell's storage. Once a freeze
    /// returns, no write to an entry of those slots commits here any more:
    /// writes under way have finished, and later ones are refused with
    /// ``OrderError/indexSlotFrozen(_:)``. Reads go on. Idempotent.
    func setIndexSlots(_ slots: [Int], frozen: Bool) async throws

    /// The slots frozen here.
    func frozenIndexSlots() async throws -> Set<Int>

    /// The entries of `slots`, which must all be frozen here (or the call is
    /// refused), scanning at most `limit` keys in key order after `after`.
    func frozenMerchantKeys(inSlots slots: Set<Int>, after: MerchantKey?, limit: Int) async throws -> MerchantKeyPage

    /// Writes entries copied from another cell as they are, replacing any it has (a slot move's copy).
    func importMerchantKeys(_ entries: [MerchantKeyEntry]) async throws

    /// Deletes the entries of `keys` whose slot is frozen here (the copy a
    /// move left behind); others are kept. Returns how many it deleted.
    func deleteFrozenMerchantKeys(_ keys: [MerchantKey]) async throws -> Int
}

extension OrderStore {
    /// The oldest unverified orders.
    public func unverifiedOrders(createdBefore cutoff: Timestamp, limit: Int) async throws -> [Order] {
        try await unverifiedOrders(createdBefore: cutoff, after: nil, limit: limit)
    }

    /// The order a merchant created in this cell with this `out_trade_no`, from the primary.
    public func order(merchantID: String, outTradeNo: String) async throws -> Order? {
        try await order(MerchantKey(merchantID: merchantID, outTradeNo: outTradeNo), consistency: .strong)
    }

    /// ``MerchantKeyIndex/bind(_:key:candidate:attempt:now:)`` in one transaction.
    public func bindMerchantKey(_ key: MerchantKey, candidate: CellID, attempt: UInt64, now: Timestamp) async throws -> MerchantKeyBinding {
        try await updateMerchantKey(key) { MerchantKeyIndex.bind($0, key: key, candidate: candidate, attempt: attempt, now: now) }
    }

    /// One bind after the other: for stores with nothing better.
    public func bindMerchantKeys(_ requests: [MerchantKeyBindRequest], now: Timestamp) async throws -> [Result<MerchantKeyBinding, OrderError>] {
        var bindings: [Result<MerchantKeyBinding, OrderError>] = []
        for request in requests {
            do {
                bindings.append(.success(try await bindMerchantKey(request.key, candidate: request.candidate, attempt: request.attempt, now: now)))
            } catch let refusal as OrderError {
                bindings.append(.failure(refusal))
            }
        }
        return bindings
    }

    public var batchesBinds: Bool { false }

    /// One claim after the other: for stores with nothing better.
    public func claimMerchantKeys(_ claims: [(key: MerchantKey, order: OrderID)], now: Timestamp) async throws -> [Result<MerchantKeyClaim, OrderError>] {
        var answers: [Result<MerchantKeyClaim, OrderError>] = []
        for claim in claims {
            do {
                answers.append(.success(try await claimMerchantKey(claim.key, for: claim.order, now: now)))
            } catch let refusal as OrderError {
                answers.append(.failure(refusal))
            }
        }
        return answers
    }

    /// The key status of one order.
    public func setKeyStatus(_ status: MerchantKeyStatus, of id: OrderID) async throws {
        try await setKeyStatus(status, of: [id])
    }

    /// ``MerchantKeyIndex/move(_:key:from:to:attempt:now:)`` in one transaction.
    public func moveMerchantKey(
        _ key: MerchantKey, from: CellID, to: CellID, attempt: UInt64, now: Timestamp
    ) async throws -> MerchantKeyBinding {
        try await updateMerchantKey(key) { MerchantKeyIndex.move($0, key: key, from: from, to: to, attempt: attempt, now: now) }
    }

    /// ``MerchantKeyIndex/claim(_:key:cell:order:now:)`` in one transaction.
    public func claimMerchantKey(_ key: MerchantKey, for order: OrderID, now: Timestamp) async throws -> MerchantKeyClaim {
        try await updateMerchantKey(key) { MerchantKeyIndex.claim($0, key: key, cell: order.cell, order: order, now: now) }
    }
}

extension OrderStore {
    /// One insert after the other: for stores with nothing better.
    public func insertBatch(_ orders: [Order]) async throws -> [StoreInsertOutcome] {
        var outcomes: [StoreInsertOutcome] = []
        outcomes.reserveCapacity(orders.count)
        for order in orders { outcomes.append(try await insert(order)) }
        return outcomes
    }

    public var batchesInserts: Bool { false }
}

/// What ``OrderStore/insert(_:)`` did.
public enum StoreInsertOutcome: Sendable, Equatable {
    case inserted(Order)
    /// An order with the same `(merchant_id, out_trade_no)` was already there.
    case existing(Order)
}

/// A failure of the storage itself (not a refusal of the request).
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A create in the cell holding its key's index slot (``OrderStore/insertBound(_:now:)``).
public struct BoundInsert: Sendable {
    /// The new order, ``MerchantKeyStatus/verified``.
    public var order: Order
    /// The create call, in the index.
    public var attempt: UInt64

    public init(order: Order, attempt: UInt64) {
        self.order = order
        self.attempt = attempt
    }
}

/// What a bound insert did.
public enum BoundInsertOutcome: Sendable {
    case inserted(Order)
    /// The cell has an order for the key already (a repeat).
    case existing(Order)
    /// The key is bound to another cell: no order was made.
    case boundElsewhere(MerchantKeyBinding)
}

/// One create's bind of its merchant key (``OrderStore/bindMerchantKeys(_:now:)``).
public struct MerchantKeyBindRequest: Sendable, Equatable {
    public var key: MerchantKey
    public var candidate: CellID
    public var attempt: UInt64

    public init(key: MerchantKey, candidate: CellID, attempt: UInt64) {
        self.key = key
        self.candidate = candidate
        self.attempt = attempt
    }
}
