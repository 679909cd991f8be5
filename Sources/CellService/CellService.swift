import CellStorage
import Logging
import OrderModel
import Synchronization

/// A failure of the cell itself, as opposed to a refusal of the request:
/// the proxy answers it with order retry (creates) or `cell_unavailable`.
public struct CellFailure: CellCallFailure, Sendable, CustomStringConvertible {
    public var cell: CellID
    public var reason: String
    /// False when the call failed before it did anything (a drill fault,
    /// a deadline passed before the store was called).
    public var mayHaveRun: Bool

    public init(cell: CellID, reason: String, mayHaveRun: Bool = true) {
        self.cell = cell
        self.reason = reason
        self.mayHaveRun = mayHaveRun
    }

    public var description: String { "cell \(cell): \(reason)" }
}

/// How a cell service groups concurrent creates into shared transactions.
public struct GroupCommitConfiguration: Sendable {
    /// Inserts running at once; creates beyond wait for the next one to finish and share it.
    public var maximumBatches: Int
    /// Orders one transaction carries at most.
    public var maximumBatchSize: Int
    /// A create that waited longer for its turn fails unstored (its caller has given up).
    public var maximumWait: Duration

    /// One insert at a time per cell service measured best on a local
    /// cluster (docs/performance.md); proxies send a cell's creates to one
    /// of its services, the active one, so that they meet in its batches.
    public init(maximumBatches: Int = 1, maximumBatchSize: Int = 64, maximumWait: Duration = .milliseconds(500)) {
        self.maximumBatches = maximumBatches
        self.maximumBatchSize = maximumBatchSize
        self.maximumWait = maximumWait
    }
}

/// One cell's business operations over its store: create (idempotent per
/// `(merchant_id, out_trade_no)`), pay, close, refund, query, expiry.
///
/// Stateless apart from the sequence allocator and the drill fault; any
/// number of cell services may run over the same store.
public final class CellService: Sendable {
    public let cell: CellID
    public let store: any OrderStore
    private let sequence: SegmentSequence
    private let clock: @Sendable () -> Timestamp
    /// The drill fault, and how many more calls it applies to (nil: until cleared).
    private let fault = Mutex<(fault: CellFault, callsLeft: Int?)>((.none, nil))
    /// The index slots this cell holds by the routing release it follows; nil: not told (no check).
    private let heldSlots = Mutex<Set<Int>?>(nil)
    private let groupCommit: CreateGroupCommit?
    /// Binds of merchant keys share transactions the same way (every create binds its key in its slot's cell first).
    private let bindGroupCommit: BindGroupCommit?
    /// Creates in the cell of their key's slot share transactions too.
    private let boundGroupCommit: BoundCreateGroupCommit?
    private let logger: Logger

    /// - Parameters:
    ///   - clock: the current time; tests pass a controllable one.
    ///   - sequenceSegmentSize: order sequence values reserved per database round trip.
    ///   - groupCommit: how concurrent creates share transactions, for stores
    ///     that insert batches cheaply (``OrderStore/batchesInserts``); nil: each create commits alone.
    public init(
        cell: CellID, store: any OrderStore, sequenceSegmentSize: Int64 = 1000, groupCommit: GroupCommitConfiguration? = .init(),
        clock: @escaping @Sendable () -> Timestamp, logger: Logger = Logger(label: "ordercell.cell")
    ) {
        self.cell = cell
        self.store = store
        self.sequence = SegmentSequence(segmentSize: sequenceSegmentSize) { size in
            try await store.reserveSequenceSegment(size: size)
        }
        self.clock = clock
        if let groupCommit, store.batchesInserts {
            self.groupCommit = CreateGroupCommit(
                maximumBatches: groupCommit.maximumBatches, maximumBatchSize: groupCommit.maximumBatchSize,
                maximumWait: groupCommit.maximumWait, insert: { try await store.insertBatch($0) }
            )
        } else {
            self.groupCommit = nil
        }
        if let groupCommit, store.batchesBinds {
            let clock = clock
            self.bindGroupCommit = BindGroupCommit(
                maximumBatches: groupCommit.maximumBatches, maximumBatchSize: groupCommit.maximumBatchSize,
                maximumWait: groupCommit.maximumWait, insert: { try await store.bindMerchantKeys($0, now: clock()) }
            )
        } else {
            self.bindGroupCommit = nil
        }
        if let groupCommit, store.batchesBinds {
            let clock = clock
            self.boundGroupCommit = BoundCreateGroupCommit(
                maximumBatches: groupCommit.maximumBatches, maximumBatchSize: groupCommit.maximumBatchSize,
                maximumWait: groupCommit.maximumWait, insert: { try await store.insertBound($0, now: clock()) }
            )
        } else {
            self.boundGroupCommit = nil
        }
        var logger = logger
        logger[metadataKey: "cell"] = "\(cell)"
        self.logger = logger
    }

    /// The creates waiting for their turn in a group commit, with their deadlines (for tests).
    var groupCommitWaiting: [(outTradeNo: String, deadline: ContinuousClock.Instant)] { groupCommit?.waiting ?? [] }

    // MARK: - Drill faults

    /// The fault injected for drills.
    public var currentFault: CellFault { fault.withLock { $0.fault } }

    /// Injects (or with `.none` clears) a drill fault: for every call until
    /// cleared, or for the next `calls` calls it applies to only, after which
    /// it clears itself. A counted fault lets a drill hit exactly one call (a
    /// create held past its caller's deadline) without racing the calls that
    /// follow it (the caller's retry).
    ///
    /// - Parameters:
    ///   - operator: who asked, as the caller authenticated them (logged).
    ///   - caller: the cell protocol caller that relayed it, when not in process (logged).
    public func inject(_ newFault: CellFault, calls: Int? = nil, by operator: String? = nil, through caller: String? = nil) {
        fault.withLock { $0 = (newFault, newFault == .none ? nil : calls) }
        var metadata: Logger.Metadata = ["fault": "\(newFault)", "calls": "\(calls.map(String.init) ?? "all")"]
        if let `operator` { metadata["operator"] = "\(`operator`)" }
        if let caller { metadata["caller"] = "\(caller)" }
        logger.notice("drill fault set", metadata: metadata)
    }

    /// Logs a cell protocol call refused because its caller's role may not make it.
    public func logRefusedCall(caller: String, method: String) {
        logger.warning("refused a cell protocol call its caller may not make", metadata: ["caller": "\(caller)", "method": "\(method)"])
    }

    /// Where a call meets the drill fault: `fail` and `latency` as it starts, `late_answer` as it answers.
    public enum FaultPoint: Sendable { case start, answer }

    /// The fault a call meets at `point` (`.none` when the fault applies elsewhere), counted against a fault
    /// set for a number of calls.
    public func faultMet(at point: FaultPoint) -> CellFault {
        fault.withLock { injected in
            let applies: Bool
            switch injected.fault {
            case .none: applies = false
            case .fail, .latency: applies = point == .start
            case .lateAnswer: applies = point == .answer
            }
            guard applies else { return .none }
            let met = injected.fault
            if let left = injected.callsLeft { injected = left > 1 ? (met, left - 1) : (.none, nil) }
            return met
        }
    }

    private func enter() async throws {
        switch faultMet(at: .start) {
        case .none, .lateAnswer: return
        case .fail: throw CellFailure(cell: cell, reason: "failing by drill fault injection", mayHaveRun: false)
        case .latency(let milliseconds): try await Task.sleep(for: .milliseconds(milliseconds))
        }
    }

    // MARK: - Operations

    /// Creates an order, or returns the one this merchant already created
    /// with the same `out_trade_no` and the same request.
    ///
    /// - Parameter deadline: when the caller stops waiting; a create not
    ///   yet handed to the store by then fails unstored (its caller may
    ///   have made the order in another cell meanwhile).
    /// - Throws: `out_trade_no_conflict` when that `out_trade_no` was used
    ///   with a different amount, currency, description or expiry.
    /// - Parameter keyStatus: ``MerchantKeyStatus/reserved`` when the key
    ///   was bound to this cell in the index, ``MerchantKeyStatus/unindexed``
    ///   when its slot could not be reached (docs/merchant-keys.md).
    public func create(
        _ request: CreateOrderRequest, keyStatus: MerchantKeyStatus = .reserved, deadline: ContinuousClock.Instant? = nil
    ) async throws -> CreateOrderResult {
        guard keyStatus == .reserved || keyStatus == .unindexed else {
            throw OrderError.invalidRequest("a new order's key status is RESERVED or UNINDEXED, not \(keyStatus.rawValue)")
        }
        try await enter()
        // No lookup first: the insert itself finds an earlier order with the
        // same out_trade_no, in the same transaction.
        let order = try await newOrder(request, keyStatus: keyStatus)
        if let deadline, ContinuousClock.now >= deadline {
            throw CellFailure(cell: cell, reason: "the caller's deadline passed before the order was stored; it was not", mayHaveRun: false)
        }
        let outcome = try await storage {
            if let groupCommit { try await groupCommit.insert(order, deadline: deadline) } else { try await store.insert(order) }
        }
        switch outcome {
        case .inserted(let order): return CreateOrderResult(order: order, created: true)
        case .existing(let existing): return try replay(existing, request)
        }
    }

    /// A create in the cell holding its key's index slot: the bind, the
    /// order and its claim in one transaction
    /// (``MerchantKeyIndex/boundCreate(_:key:cell:order:attempt:now:)``).
    /// A new order holds its key at once (``MerchantKeyStatus/verified``);
    /// a key bound to another cell is answered, and no order made.
    public func createBound(
        _ request: CreateOrderRequest, attempt: UInt64, deadline: ContinuousClock.Instant? = nil
    ) async throws -> BoundCreateResult {
        try await enter()
        let key = MerchantKey(merchantID: request.merchantID, outTradeNo: request.outTradeNo)
        try checkSlot(key)
        let order = try await newOrder(request, keyStatus: .verified)
        if let deadline, ContinuousClock.now >= deadline {
            throw CellFailure(cell: cell, reason: "the caller's deadline passed before the order was stored; it was not", mayHaveRun: false)
        }
        let create = BoundInsert(order: order, attempt: attempt)
        let now = clock()
        let outcome = try await storage {
            if let boundGroupCommit {
                try await boundGroupCommit.insert(create, deadline: deadline).get()
            } else {
                try await store.insertBound([create], now: now)[0].get()
            }
        }
        switch outcome {
        case .inserted(let order): return .order(CreateOrderResult(order: order, created: true))
        case .existing(let existing): return .order(try replay(existing, request))
        case .boundElsewhere(let binding): return .boundElsewhere(binding)
        }
    }

    /// A new order of this cell for `request`, its id minted now.
    private func newOrder(_ request: CreateOrderRequest, keyStatus: MerchantKeyStatus) async throws -> Order {
        // A replay spends one sequence number, which is never reused (ids need not be dense).
        let number = try await storage { try await sequence.next() }
        let now = clock()
        let id: OrderID
        do {
            id = try OrderID(cell: cell, createdAt: now, sequence: number)
        } catch {
            throw CellFailure(cell: cell, reason: "cannot mint an order id: \(error)")
        }
        return Order(
            id: id, merchantID: request.merchantID, outTradeNo: request.outTradeNo, amount: request.amount,
            currency: request.currency, description: request.description, createdAt: now,
            expiresAt: now.adding(seconds: request.expireSeconds), keyStatus: keyStatus
        )
    }

    private func replay(_ existing: Order, _ request: CreateOrderRequest) throws(OrderError) -> CreateOrderResult {
        guard existing.matches(request) else {
            throw OrderError(
                .outTradeNoConflict,
                "out_trade_no \(request.outTradeNo) was already used for order \(existing.id) with a different request"
            )
        }
        return CreateOrderResult(order: existing, created: false)
    }

    /// Applies pay, close or refund to an order of this cell.
    ///
    /// - Parameter merchant: set when the caller acts for a merchant: the
    ///   order must be that merchant's, or it is `order_not_found` exactly as
    ///   an order that does not exist (no oracle). An order's merchant never
    ///   changes, so reading it before the command's own transaction is as
    ///   good as reading it inside.
    public func apply(_ command: OrderCommand, to id: OrderID, ownedBy merchant: String? = nil) async throws -> OrderCommandResult {
        try await enter()
        try checkOwnership(id)
        if let merchant {
            // Inside the call's one pass through the drill gate: a fault for one call hits the command, not this read.
            guard let order = try await storage({ try await store.order(id, consistency: .strong) }), order.merchantID == merchant else {
                throw OrderError(.orderNotFound, "no order \(id)")
            }
        }
        let now = clock()
        return OrderCommandResult(try await storage { try await store.apply(command, to: id, now: now) })
    }

    /// The order with this id (`merchant`: it must be that merchant's, as in ``apply(_:to:ownedBy:)``).
    public func order(_ id: OrderID, consistency: ReadConsistency, ownedBy merchant: String? = nil) async throws -> Order {
        try await enter()
        try checkOwnership(id)
        guard let order = try await storage({ try await store.order(id, consistency: consistency) }),
            merchant == nil || order.merchantID == merchant
        else {
            throw OrderError(.orderNotFound, "no order \(id)")
        }
        return order
    }

    /// The order's refunds, oldest first (`merchant`: as in ``apply(_:to:ownedBy:)``).
    public func refunds(of id: OrderID, ownedBy merchant: String? = nil) async throws -> [Refund] {
        _ = try await order(id, consistency: .strong, ownedBy: merchant)
        return try await storage { try await store.refunds(of: id) }
    }

    /// The order's audit trail, oldest first (`merchant`: as in ``apply(_:to:ownedBy:)``).
    public func events(of id: OrderID, ownedBy merchant: String? = nil) async throws -> [OrderEvent] {
        _ = try await order(id, consistency: .strong, ownedBy: merchant)
        return try await storage { try await store.events(of: id) }
    }

    /// Closes unpaid orders whose expiry has passed; returns how many it closed.
    public func sweepExpiredOrders(limit: Int = 500) async throws -> Int {
        let now = clock()
        var closed = 0
        for id in try await storage({ try await store.expiredOrders(at: now, limit: limit) }) {
            let decision = try await storage { try await store.apply(.expire, to: id, now: now) }
            if case .changed = decision { closed += 1 }
        }
        return closed
    }

    /// Deletes the health checker's synthetic orders (``ProbeMerchant``)
    /// older than `age`, with their refunds and events; returns how many.
    /// Merchants' orders are never deleted.
    public func purgeProbeOrders(olderThan age: Duration = .seconds(86_400), limit: Int = 5_000) async throws -> Int {
        let cutoff = clock().adding(milliseconds: -Int64(age.components.seconds * 1000))
        return try await storage { try await store.purgeOrders(of: ProbeMerchant.id, createdBefore: cutoff, limit: limit) }
    }

    // MARK: - Merchant-key index (the entries of the slots this cell holds)

    /// The index slots this cell holds, from the routing release it follows.
    /// Index calls for keys of other slots are refused (`index_unavailable`):
    /// a caller routing by another map — a stale release, a slot being
    /// moved — never writes an entry where the rest will not look for it.
    public func holdIndexSlots(_ slots: Set<Int>) {
        heldSlots.withLock { $0 = slots }
    }

    private func checkSlot(_ key: MerchantKey) throws(OrderError) {
        guard let held = heldSlots.withLock({ $0 }) else { return }
        guard held.contains(key.indexSlot) else {
            throw OrderError(
                .indexUnavailable, "cell \(cell) does not hold index slot \(key.indexSlot) by the routing release it follows", retryAfterSeconds: 1
            )
        }
    }

    /// Where `key`'s order goes: reserved for `candidate` if nobody reserved it, else its owner.
    public func bindMerchantKey(
        _ key: MerchantKey, candidate: CellID, attempt: UInt64, deadline: ContinuousClock.Instant? = nil
    ) async throws -> MerchantKeyBinding {
        try await enter()
        try checkSlot(key)
        let now = clock()
        return try await storage {
            if let bindGroupCommit {
                try await bindGroupCommit.insert(MerchantKeyBindRequest(key: key, candidate: candidate, attempt: attempt), deadline: deadline).get()
            } else {
                try await store.bindMerchantKey(key, candidate: candidate, attempt: attempt, now: now)
            }
        }
    }

    /// Moves the create call `attempt`'s own reservation of `key` from its failed owner.
    public func moveMerchantKey(_ key: MerchantKey, from: CellID, to: CellID, attempt: UInt64) async throws -> MerchantKeyBinding {
        try await enter()
        try checkSlot(key)
        let now = clock()
        return try await storage { try await store.moveMerchantKey(key, from: from, to: to, attempt: attempt, now: now) }
    }

    /// Claims `key` for `order` (before its first pay, or by the reconciler).
    public func claimMerchantKey(_ key: MerchantKey, for order: OrderID) async throws -> MerchantKeyClaim {
        try await enter()
        try checkSlot(key)
        let now = clock()
        return try await storage { try await store.claimMerchantKey(key, for: order, now: now) }
    }

    /// The reconciler's conditional write: `settled` replaces the entry only
    /// if the entry is still at `revision`. Returns whether it did.
    public func settleMerchantKey(_ settled: MerchantKeyEntry, ifRevision revision: Int) async throws -> Bool {
        try await enter()
        try checkSlot(settled.key)
        return try await storage {
            try await store.updateMerchantKey(settled.key) { entry in
                guard let entry, entry.revision == revision else { return MerchantKeyIndex.Decision(answer: false, write: nil) }
                return MerchantKeyIndex.Decision(answer: true, write: settled)
            }
        }
    }

    /// The key's entry, if this cell's slot has one. No entry in a frozen
    /// slot is no answer: the slot is being moved, or has been (its entries
    /// are, or will be, in its new cell only).
    public func merchantKeyEntry(_ key: MerchantKey, consistency: ReadConsistency) async throws -> MerchantKeyEntry? {
        try await enter()
        try checkSlot(key)
        return try await storage {
            let entry = try await store.merchantKeyEntry(key, consistency: consistency)
            if entry == nil, try await store.frozenIndexSlots().contains(key.indexSlot) { throw OrderError.indexSlotFrozen(key.indexSlot) }
            return entry
        }
    }

    /// This cell's order for a merchant key.
    public func order(_ key: MerchantKey, consistency: ReadConsistency) async throws -> Order? {
        try await enter()
        return try await storage { try await store.order(key, consistency: consistency) }
    }

    /// Orders created unindexed before `cutoff` (the reconciler's work).
    public func unverifiedOrders(createdBefore cutoff: Timestamp, after: OrderListPosition? = nil, limit: Int) async throws -> [Order] {
        try await enter()
        return try await storage { try await store.unverifiedOrders(createdBefore: cutoff, after: after, limit: limit) }
    }

    /// Entries of keys moved away from a cell, unchanged since before `cutoff` (the reconciler's work).
    /// Entries of frozen slots are left out: they cannot be settled here (a
    /// slot being moved is settled in its new cell once it is there).
    public func movedMerchantKeys(updatedBefore cutoff: Timestamp, limit: Int) async throws -> [MerchantKeyEntry] {
        try await enter()
        return try await storage {
            let moved = try await store.movedMerchantKeys(updatedBefore: cutoff, limit: limit)
            guard !moved.isEmpty else { return moved }
            let frozen = try await store.frozenIndexSlots()
            return frozen.isEmpty ? moved : moved.filter { !frozen.contains($0.key.indexSlot) }
        }
    }

    /// Records the reconciler's verdict on orders' keys.
    public func setKeyStatus(_ status: MerchantKeyStatus, of ids: [OrderID]) async throws {
        try await enter()
        for id in ids { try checkOwnership(id) }
        try await storage { try await store.setKeyStatus(status, of: ids) }
    }

    /// Claims several keys, each for its order, in one transaction (the reconciler's pages).
    public func claimMerchantKeys(_ claims: [(key: MerchantKey, order: OrderID)]) async throws -> [Result<MerchantKeyClaim, OrderError>] {
        try await enter()
        for claim in claims { try checkSlot(claim.key) }
        let now = clock()
        return try await storage { try await store.claimMerchantKeys(claims, now: now) }
    }

    // MARK: - Moving index slots (docs/merchant-keys.md, "Moving slots")
    //
    // These calls are the operator's slot move, made by the control plane.
    // They are not checked against the slots this cell holds by its release
    // (the source stops holding the slots at the re-point; the target holds
    // them only then): the fence in the storage is what guards them.

    /// Freezes (or thaws) index slots in this cell's storage: once frozen,
    /// no entry of them changes here, whichever cell service or caller tries.
    public func setIndexSlots(_ slots: [Int], frozen: Bool) async throws {
        try await enter()
        try Self.checkSlotNumbers(slots)
        try await storage { try await store.setIndexSlots(slots, frozen: frozen) }
    }

    /// A page of the entries of frozen slots, for their copy to another cell.
    public func frozenMerchantKeys(inSlots slots: Set<Int>, after: MerchantKey?, limit: Int) async throws -> MerchantKeyPage {
        try await enter()
        try Self.checkSlotNumbers(Array(slots))
        return try await storage { try await store.frozenMerchantKeys(inSlots: slots, after: after, limit: limit) }
    }

    /// Writes entries copied from a slot's old cell. Refused for a slot this
    /// cell holds already: its entries are live here, and a copy would go back in time.
    public func importMerchantKeys(_ entries: [MerchantKeyEntry]) async throws {
        try await enter()
        if let held = heldSlots.withLock({ $0 }), let live = entries.first(where: { held.contains($0.key.indexSlot) }) {
            throw OrderError(
                .invalidState, "cell \(cell) holds index slot \(live.key.indexSlot) already: a copy into it would overwrite live entries"
            )
        }
        try await storage { try await store.importMerchantKeys(entries) }
    }

    /// Deletes the entries a slot move left behind here (only of frozen slots).
    public func deleteFrozenMerchantKeys(_ keys: [MerchantKey]) async throws -> Int {
        try await enter()
        return try await storage { try await store.deleteFrozenMerchantKeys(keys) }
    }

    /// The cell's event feed after `position` (docs/events.md): up to `limit` (1...1000) events in commit order.
    public func eventFeed(after position: EventFeedPosition, limit: Int) async throws -> [FeedEvent] {
        guard (1...1000).contains(limit) else { throw OrderError.invalidRequest("a feed page is 1...1000 events, not \(limit)") }
        try await enter()
        return try await storage { try await store.eventFeed(after: position, limit: limit) }
    }

    // MARK: - The notifier's outbox (operators, through the control plane)

    /// The cell's notifier: its backlog, how far it lags behind the feed, and up to `limit` (1...1000)
    /// notifications in `status` after event id `after` (none when `status` is nil).
    public func notifierStatus(_ status: NotificationStatus?, after: String?, limit: Int) async throws -> NotifierStatusPage {
        guard (1...1000).contains(limit) else { throw OrderError.invalidRequest("a page of notifications is 1...1000, not \(limit)") }
        let outbox = try self.outbox()
        try await enter()
        let now = clock()
        return try await storage {
            let backlog = try await outbox.notificationBacklog(at: now)
            // The oldest event not taken yet: how long it has waited is the notifier's lag behind the feed.
            let next = try await store.eventFeed(after: backlog.cursor, limit: 1).first
            let lag = next.map { max(0, now.millisecondsSinceEpoch - $0.event.at.millisecondsSinceEpoch) } ?? 0
            var listed: [StoredNotification] = []
            if let status { listed = try await outbox.notifications(status, after: after, limit: limit) }
            return NotifierStatusPage(backlog: backlog, feedLagMilliseconds: lag, notifications: listed.map(\.record))
        }
    }

    /// Makes dead notifications pending again, due now (every dead one when `eventIDs` is nil); how many.
    public func redeliverNotifications(_ eventIDs: [String]?, by operator: String) async throws -> Int {
        if let eventIDs {
            guard eventIDs.count <= 1000 else { throw OrderError.invalidRequest("at most 1000 event ids a call, not \(eventIDs.count)") }
            try eventIDs.forEach { try RequestLimits.checkText($0, field: "event_id", maxBytes: 64) }
        }
        let outbox = try self.outbox()
        try await enter()
        let now = clock()
        let count = try await storage { try await outbox.redeliverDeadNotifications(eventIDs, now: now) }
        logger.notice(
            "dead notifications redelivered", metadata: ["by": "\(`operator`)", "count": "\(count)", "event_ids": "\(eventIDs.map { "\($0)" } ?? "all dead")"]
        )
        return count
    }

    private func outbox() throws(OrderError) -> any NotificationStore {
        guard let outbox = store as? any NotificationStore else {
            throw OrderError.invalidRequest("cell \(cell)'s storage keeps no outbox of notifications")
        }
        return outbox
    }

    private static func checkSlotNumbers(_ slots: [Int]) throws(OrderError) {
        if let wrong = slots.first(where: { !(0..<MerchantKey.indexSlotCount).contains($0) }) {
            throw OrderError.invalidRequest("index slots are 0...\(MerchantKey.indexSlotCount - 1), not \(wrong)")
        }
    }

    private func checkOwnership(_ id: OrderID) throws(OrderError) {
        guard id.cell == cell else { throw OrderError(.orderNotFound, "order \(id) does not belong to cell \(cell)") }
    }

    /// Runs a store call; refusals pass through, storage failures become ``CellFailure``.
    private func storage<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as OrderError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            logger.error("storage failure", metadata: ["error": "\(error)"])
            throw CellFailure(cell: cell, reason: "storage failure: \(error)")
        }
    }
}
