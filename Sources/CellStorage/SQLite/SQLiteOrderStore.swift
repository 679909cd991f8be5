import GRDB
import Logging
import OrderCellPlatform
import OrderModel
import ServiceLifecycle

/// A cell's storage in one SQLite file (WAL mode), the embedded default.
///
/// Writes go through GRDB's single writer connection, so the
/// read-decide-write of ``apply(_:to:now:)`` is serialised per cell; reads
/// use the pool's concurrent readers. `synchronous = FULL` makes every
/// acknowledged commit durable before it is acknowledged. Concurrent creates
/// share a commit (``insertBatch(_:)``, through the cell service's group
/// commit), and the log is copied back into the database file by a
/// connection of its own (``SQLiteCheckpointer``) rather than by a create's commit.
///
/// A `Service`: ``run()`` is that checkpointer's loop, until graceful
/// shutdown or cancellation. A store whose `run()` is not running stays
/// correct; its writer's own checkpoints (a backstop every
/// ``SQLiteCheckpointer/writerBackstopPages`` pages) then bound the log.
public final class SQLiteOrderStore: OrderStore, Service {
    let pool: DatabasePool
    private let checkpointer: SQLiteCheckpointer
    private let machine = OrderStateMachine()
    public let path: String

    /// What the store's checkpointer has done so far (for tests).
    var checkpointProgress: SQLiteCheckpointer.Progress { checkpointer.progress }

    /// The writer connection's automatic checkpoint threshold, in pages, and
    /// its `synchronous` level (2 is FULL) (for tests).
    func writerSettings() async throws -> (automaticCheckpointPages: Int, synchronous: Int) {
        try await pool.writeWithoutTransaction { db in
            (try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint") ?? 0, try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? 0)
        }
    }

    /// Copies the log back into the database file every ``SQLiteCheckpointer/interval``
    /// until a graceful shutdown or cancellation.
    public func run() async {
        let (checkpointer, pool) = (self.checkpointer, self.pool)
        await cancelWhenGracefulShutdown { await checkpointer.run(writer: pool) }
    }

    private init(pool: DatabasePool, checkpointer: SQLiteCheckpointer, path: String) {
        self.pool = pool
        self.checkpointer = checkpointer
        self.path = path
    }

    /// Opens (creating if needed) the database at `path` and migrates it
    /// (``DurableSQLite``: every commit `fsync`ed, opened off the caller's executor).
    public static func open(
        path: String, busyTimeoutSeconds: Double = 5, logger: Logger = Logger(label: "ordercell.storage")
    ) async throws -> SQLiteOrderStore {
        try await DurableSQLite.open(
            path: path, busyTimeoutSeconds: busyTimeoutSeconds,
            // Checkpoints run on a connection of their own (SQLiteCheckpointer).
            everyConnection: ["PRAGMA wal_autocheckpoint = \(SQLiteCheckpointer.writerBackstopPages)"],
            writer: ["PRAGMA checkpoint_fullfsync = ON", "PRAGMA journal_size_limit = \(SQLiteCheckpointer.journalSizeLimitBytes)"]
        ) { pool in
            try SQLiteSchema.migrator.migrate(pool)
            let checkpointer = try SQLiteCheckpointer(path: path, busyTimeoutSeconds: busyTimeoutSeconds, logger: logger)
            return SQLiteOrderStore(pool: pool, checkpointer: checkpointer, path: path)
        }
    }

    public func insert(_ order: Order) async throws -> StoreInsertOutcome {
        try await guarded {
            try await pool.write { db in try Self.insertUnlessExisting(order, db) }
        }
    }

    /// One transaction, one commit (one `fsync` of the WAL) for all of them:
    /// what lets the cell service's group commit acknowledge many creates
    /// with one write to disk. An order whose key came earlier in the batch
    /// finds that one, as it would have with one insert after the other.
    public func insertBatch(_ orders: [Order]) async throws -> [StoreInsertOutcome] {
        try await guarded {
            try await pool.write { db in try orders.map { try Self.insertUnlessExisting($0, db) } }
        }
    }

    public var batchesInserts: Bool { true }

    public func order(_ id: OrderID, consistency: ReadConsistency) async throws -> Order? {
        let key = id.description
        return try await guarded {
            try await pool.read { db in try Self.fetchOrder(db, id: key) }
        }
    }

    public func order(_ key: MerchantKey, consistency: ReadConsistency) async throws -> Order? {
        try await guarded {
            try await pool.read { db in try Self.fetchOrder(db, merchantID: key.merchantID, outTradeNo: key.outTradeNo) }
        }
    }

    public func apply(_ command: OrderCommand, to id: OrderID, now: Timestamp) async throws -> OrderStateMachine.Decision {
        let machine = self.machine
        let key = id.description
        let result: Result<OrderStateMachine.Decision, OrderError> = try await guarded {
            try await pool.write { db in
                guard let order = try Self.fetchOrder(db, id: key) else {
                    return .failure(OrderError(.orderNotFound, "no order \(key)"))
                }
                var existingRefund: Refund?
                if let refundID = command.refundID {
                    existingRefund = try Self.fetchRefund(db, orderID: key, refundID: refundID)
                }
                let decision: OrderStateMachine.Decision
                do throws(OrderError) {
                    decision = try machine.decide(command, on: order, existingRefund: existingRefund, now: now)
                } catch {
                    return .failure(error)
                }
                if case .changed(let next, let event, let refund) = decision {
                    try db.cachedStatement(sql: SQLiteSchema.updateOrder).execute(arguments: Self.updateArguments(of: next))
                    if let refund {
                        try db.cachedStatement(sql: SQLiteSchema.insertRefund).execute(arguments: [
                            key, refund.refundID, refund.amount, refund.reason, refund.createdAt.millisecondsSinceEpoch,
                        ])
                    }
                    try Self.append(event, db)
                }
                return .success(decision)
            }
        }
        return try result.get()
    }

    public func refunds(of id: OrderID) async throws -> [Refund] {
        let key = id.description
        return try await guarded {
            try await pool.read { db in
                try Row.fetchAll(db.cachedStatement(sql: SQLiteSchema.selectRefunds), arguments: [key]).map { row in
                    Refund(
                        refundID: row[0], orderID: id, amount: row[1], reason: row[2],
                        createdAt: Timestamp(millisecondsSinceEpoch: row[3])
                    )
                }
            }
        }
    }

    /// One writer at a time commits in event-id order: the event id is the position.
    public func eventFeed(after position: EventFeedPosition, limit: Int) async throws -> [FeedEvent] {
        try await guarded {
            try await pool.read { db in
                try Row.fetchAll(db.cachedStatement(sql: SQLiteSchema.selectEventFeed), arguments: [position.event, limit]).map { row in
                    let eventID: Int64 = row[0]
                    let orderText: String = row[1]
                    guard let kind = OrderEventKind(rawValue: row[3]), let status = OrderStatus(rawValue: row[7]) else {
                        throw StoreError("event \(eventID) has an unknown kind or status")
                    }
                    let event = OrderEvent(
                        orderID: try OrderID(parsing: orderText), sequence: row[2], kind: kind, at: Timestamp(millisecondsSinceEpoch: row[4]),
                        amount: row[5], reference: row[6], statusAfter: status
                    )
                    return FeedEvent(position: EventFeedPosition(transaction: UInt64(eventID), event: eventID), merchantID: row[8], event: event)
                }
            }
        }
    }

    public func events(of id: OrderID) async throws -> [OrderEvent] {
        let key = id.description
        return try await guarded {
            try await pool.read { db in
                try Row.fetchAll(db.cachedStatement(sql: SQLiteSchema.selectEvents), arguments: [key]).map { row in
                    guard let kind = OrderEventKind(rawValue: row[1]), let status = OrderStatus(rawValue: row[5]) else {
                        throw StoreError("event \(key)/\(row[0] as Int) has an unknown kind or status")
                    }
                    return OrderEvent(
                        orderID: id, sequence: row[0], kind: kind, at: Timestamp(millisecondsSinceEpoch: row[2]),
                        amount: row[3], reference: row[4], statusAfter: status
                    )
                }
            }
        }
    }

    public func expiredOrders(at now: Timestamp, limit: Int) async throws -> [OrderID] {
        try await guarded {
            try await pool.read { db in
                try String.fetchAll(
                    db.cachedStatement(sql: SQLiteSchema.selectExpired), arguments: [now.millisecondsSinceEpoch, limit]
                ).map { text in
                    do { return try OrderID(parsing: text) } catch { throw StoreError("stored order id \(text) is invalid: \(error)") }
                }
            }
        }
    }

    public func reserveSequenceSegment(size: Int64) async throws -> ClosedRange<Int64> {
        precondition(size > 0)
        return try await guarded {
            try await pool.write { db in
                try db.execute(sql: "INSERT OR IGNORE INTO sequences (name, next_value) VALUES ('order', 1)")
                let start = try Int64.fetchOne(db, sql: "SELECT next_value FROM sequences WHERE name = 'order'") ?? 1
                try db.execute(
                    sql: "UPDATE sequences SET next_value = ? WHERE name = 'order'", arguments: [start + size]
                )
                return start...(start + size - 1)
            }
        }
    }

    public func purgeOrders(of merchantID: String, createdBefore cutoff: Timestamp, limit: Int) async throws -> Int {
        try await guarded {
            try await pool.write { db in
                let ids = try String.fetchAll(
                    db, sql: "SELECT order_id FROM orders WHERE merchant_id = ? AND created_at < ? LIMIT ?",
                    arguments: [merchantID, cutoff.millisecondsSinceEpoch, limit]
                )
                for id in ids {
                    try db.execute(sql: "DELETE FROM order_events WHERE order_id = ?", arguments: [id])
                    try db.execute(sql: "DELETE FROM refunds WHERE order_id = ?", arguments: [id])
                    try db.execute(sql: "DELETE FROM orders WHERE order_id = ?", arguments: [id])
                }
                try db.execute(
                    sql: "DELETE FROM merchant_keys WHERE merchant_id = ? AND created_at < ?",
                    arguments: [merchantID, cutoff.millisecondsSinceEpoch]
                )
                return ids.count
            }
        }
    }

    public func orderCount() async throws -> Int {
        try await guarded {
            try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM orders") ?? 0 }
        }
    }

    // MARK: - Key status of orders

    public func unverifiedOrders(createdBefore cutoff: Timestamp, after: OrderListPosition?, limit: Int) async throws -> [Order] {
        try await guarded {
            try await pool.read { db in
                try Row.fetchAll(
                    db.cachedStatement(sql: SQLiteSchema.selectUnverified),
                    arguments: [cutoff.millisecondsSinceEpoch, after?.createdAt.millisecondsSinceEpoch ?? Int64.min, after?.id.description ?? "", limit]
                )
                .map(Self.order(from:))
            }
        }
    }

    public func setKeyStatus(_ status: MerchantKeyStatus, of ids: [OrderID]) async throws {
        let keys = ids.map(\.description)
        try await guarded {
            try await pool.write { db in
                let statement = try db.cachedStatement(sql: "UPDATE orders SET key_status = ? WHERE order_id = ?")
                for key in keys { try statement.execute(arguments: [status.rawValue, key]) }
            }
        }
    }

    /// One transaction for the whole page.
    public func claimMerchantKeys(_ claims: [(key: MerchantKey, order: OrderID)], now: Timestamp) async throws -> [Result<MerchantKeyClaim, OrderError>] {
        try await guarded {
            try await pool.write { db in
                let frozen = Set(try Int.fetchAll(db, sql: SQLiteSchema.selectFrozenSlots))
                return try claims.map { claim -> Result<MerchantKeyClaim, OrderError> in
                    guard !frozen.contains(claim.key.indexSlot) else { return .failure(OrderError.indexSlotFrozen(claim.key.indexSlot)) }
                    let entry = try Row.fetchOne(
                        db.cachedStatement(sql: SQLiteSchema.selectMerchantKey), arguments: [claim.key.merchantID, claim.key.outTradeNo]
                    ).map(Self.merchantKeyEntry(from:))
                    let decision = MerchantKeyIndex.claim(entry, key: claim.key, cell: claim.order.cell, order: claim.order, now: now)
                    if let write = decision.write { try Self.write(write, db) }
                    return .success(decision.answer)
                }
            }
        }
    }

    // MARK: - Merchant-key index

    public func updateMerchantKey<Answer: Sendable>(
        _ key: MerchantKey, _ decide: @escaping @Sendable (MerchantKeyEntry?) -> MerchantKeyIndex.Decision<Answer>
    ) async throws -> Answer {
        try await guarded {
            try await pool.write { db in
                let entry = try Row.fetchOne(
                    db.cachedStatement(sql: SQLiteSchema.selectMerchantKey), arguments: [key.merchantID, key.outTradeNo]
                ).map(Self.merchantKeyEntry(from:))
                let decision = decide(entry)
                if let write = decision.write { try Self.write(write, db) }
                return decision.answer
            }
        }
    }

    /// One transaction, one commit for all of them (as ``insertBatch(_:)`` for orders).
    public func bindMerchantKeys(_ requests: [MerchantKeyBindRequest], now: Timestamp) async throws -> [Result<MerchantKeyBinding, OrderError>] {
        try await guarded {
            try await pool.write { db in
                try requests.map { request -> Result<MerchantKeyBinding, OrderError> in
                    let entry = try Row.fetchOne(
                        db.cachedStatement(sql: SQLiteSchema.selectMerchantKey), arguments: [request.key.merchantID, request.key.outTradeNo]
                    ).map(Self.merchantKeyEntry(from:))
                    let decision = MerchantKeyIndex.bind(entry, key: request.key, candidate: request.candidate, attempt: request.attempt, now: now)
                    if let write = decision.write {
                        do { try Self.write(write, db) } catch let refusal as OrderError { return .failure(refusal) }
                    }
                    return .success(decision.answer)
                }
            }
        }
    }

    public var batchesBinds: Bool { true }

    /// One transaction, one commit for all of them.
    public func insertBound(_ creates: [BoundInsert], now: Timestamp) async throws -> [Result<BoundInsertOutcome, OrderError>] {
        try await guarded {
            try await pool.write { db in
                let frozen = Set(try Int.fetchAll(db, sql: SQLiteSchema.selectFrozenSlots))
                return try creates.map { create -> Result<BoundInsertOutcome, OrderError> in
                    let order = create.order
                    let key = order.merchantKey
                    let entry = try Row.fetchOne(
                        db.cachedStatement(sql: SQLiteSchema.selectMerchantKey), arguments: [key.merchantID, key.outTradeNo]
                    ).map(Self.merchantKeyEntry(from:))
                    switch MerchantKeyIndex.boundCreate(entry, key: key, cell: order.id.cell, order: order.id, attempt: create.attempt, now: now) {
                    case .elsewhere(let binding):
                        return .success(.boundElsewhere(binding))
                    case .here(let claim):
                        if claim != nil, frozen.contains(key.indexSlot) { return .failure(OrderError.indexSlotFrozen(key.indexSlot)) }
                        var stored = order
                        if claim == nil { stored.keyStatus = .reserved }
                        switch try Self.insertUnlessExisting(stored, db) {
                        case .existing(let existing):
                            // An order made without the index: the key is only reserved for this cell, for the reconciler to claim for it.
                            if entry == nil, claim != nil {
                                try Self.write(MerchantKeyEntry(key: key, owner: order.id.cell, attempt: create.attempt, createdAt: now), db)
                            }
                            return .success(.existing(existing))
                        case .inserted(let inserted):
                            if let claim { try Self.write(claim, db) }
                            return .success(.inserted(inserted))
                        }
                    }
                }
            }
        }
    }

    public func merchantKeyEntry(_ key: MerchantKey, consistency: ReadConsistency) async throws -> MerchantKeyEntry? {
        try await guarded {
            try await pool.read { db in
                try Row.fetchOne(db.cachedStatement(sql: SQLiteSchema.selectMerchantKey), arguments: [key.merchantID, key.outTradeNo])
                    .map(Self.merchantKeyEntry(from:))
            }
        }
    }

    public func movedMerchantKeys(updatedBefore cutoff: Timestamp, limit: Int) async throws -> [MerchantKeyEntry] {
        try await guarded {
            try await pool.read { db in
                try Row.fetchAll(
                    db.cachedStatement(sql: SQLiteSchema.selectMovedMerchantKeys), arguments: [cutoff.millisecondsSinceEpoch, limit]
                ).map(Self.merchantKeyEntry(from:))
            }
        }
    }

    // MARK: - Moving index slots

    /// Every index write goes through here: inside the write transaction
    /// (SQLite has one writer at a time), so a freeze, itself a write, is
    /// either before it (and refuses it) or after it.
    private static func write(_ entry: MerchantKeyEntry, _ db: Database) throws {
        let slot = entry.key.indexSlot
        if try Bool.fetchOne(db.cachedStatement(sql: SQLiteSchema.selectSlotFrozen), arguments: [slot]) ?? false {
            throw OrderError.indexSlotFrozen(slot)
        }
        try db.cachedStatement(sql: SQLiteSchema.upsertMerchantKey).execute(arguments: arguments(of: entry))
    }

    public func setIndexSlots(_ slots: [Int], frozen: Bool) async throws {
        try await guarded {
            try await pool.write { db in
                let statement = try db.cachedStatement(sql: frozen ? SQLiteSchema.freezeSlot : SQLiteSchema.thawSlot)
                for slot in slots { try statement.execute(arguments: [slot]) }
            }
        }
    }

    public func frozenIndexSlots() async throws -> Set<Int> {
        try await guarded { try await pool.read { db in Set(try Int.fetchAll(db, sql: SQLiteSchema.selectFrozenSlots)) } }
    }

    public func frozenMerchantKeys(inSlots slots: Set<Int>, after: MerchantKey?, limit: Int) async throws -> MerchantKeyPage {
        try await guarded {
            try await pool.read { db in
                let frozen = Set(try Int.fetchAll(db, sql: SQLiteSchema.selectFrozenSlots))
                if let open = slots.subtracting(frozen).min() {
                    throw OrderError(.invalidState, "index slot \(open) is not frozen in this cell: its entries may still change")
                }
                let rows = try Row.fetchAll(
                    db.cachedStatement(sql: SQLiteSchema.selectMerchantKeysAfter),
                    arguments: [after?.merchantID ?? "", after?.outTradeNo ?? "", limit]
                )
                let entries = try rows.map(Self.merchantKeyEntry(from:))
                return MerchantKeyPage(
                    entries: entries.filter { slots.contains($0.key.indexSlot) }, next: rows.count < limit ? nil : entries.last?.key
                )
            }
        }
    }

    public func importMerchantKeys(_ entries: [MerchantKeyEntry]) async throws {
        try await guarded {
            try await pool.write { db in
                let statement = try db.cachedStatement(sql: SQLiteSchema.importMerchantKey)
                for entry in entries { try statement.execute(arguments: Self.arguments(of: entry)) }
            }
        }
    }

    public func deleteFrozenMerchantKeys(_ keys: [MerchantKey]) async throws -> Int {
        try await guarded {
            try await pool.write { db in
                let frozen = Set(try Int.fetchAll(db, sql: SQLiteSchema.selectFrozenSlots))
                let statement = try db.cachedStatement(sql: SQLiteSchema.deleteMerchantKey)
                var deleted = 0
                for key in keys where frozen.contains(key.indexSlot) {
                    try statement.execute(arguments: [key.merchantID, key.outTradeNo])
                    deleted += db.changesCount
                }
                return deleted
            }
        }
    }

    private static func merchantKeyEntry(from row: Row) throws -> MerchantKeyEntry {
        let merchantID: String = row[0]
        let outTradeNo: String = row[1]
        let stored = try MerchantKeyRow(
            owner: row[2], holder: row[3], attempt: row[4], abandoned: row[5], revision: row[6], createdAt: row[7], updatedAt: row[8]
        )
        return stored.entry(for: MerchantKey(merchantID: merchantID, outTradeNo: outTradeNo))
    }

    private static func arguments(of entry: MerchantKeyEntry) -> StatementArguments {
        let row = MerchantKeyRow(entry)
        return [
            entry.key.merchantID, entry.key.outTradeNo, row.owner, row.holder, row.attempt, row.abandoned, row.revision,
            row.createdAt, row.updatedAt,
        ]
    }

    // MARK: - Rows

    /// Runs a database call, turning SQLite failures into ``StoreError``.
    func guarded<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as OrderError {
            throw error
        } catch let error as StoreError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw StoreError("SQLite store \(path): \(error)")
        }
    }

    /// The order and its creation event, unless its `(merchant_id, out_trade_no)` is taken
    /// (in the store, or earlier in the same transaction): then the order already there.
    private static func insertUnlessExisting(_ order: Order, _ db: Database) throws -> StoreInsertOutcome {
        if let existing = try fetchOrder(db, merchantID: order.merchantID, outTradeNo: order.outTradeNo) {
            return .existing(existing)
        }
        try db.cachedStatement(sql: SQLiteSchema.insertOrder).execute(arguments: arguments(of: order))
        try append(OrderStateMachine.creationEvent(of: order), db)
        return .inserted(order)
    }

    private static func fetchOrder(_ db: Database, id: String) throws -> Order? {
        try Row.fetchOne(db.cachedStatement(sql: SQLiteSchema.selectOrderByID), arguments: [id]).map(order(from:))
    }

    private static func fetchOrder(_ db: Database, merchantID: String, outTradeNo: String) throws -> Order? {
        try Row.fetchOne(db.cachedStatement(sql: SQLiteSchema.selectOrderByTradeNo), arguments: [merchantID, outTradeNo])
            .map(order(from:))
    }

    private static func fetchRefund(_ db: Database, orderID: String, refundID: String) throws -> Refund? {
        try Row.fetchOne(db.cachedStatement(sql: SQLiteSchema.selectRefund), arguments: [orderID, refundID]).map { row in
            Refund(
                refundID: refundID, orderID: try OrderID(parsing: orderID), amount: row[0], reason: row[1],
                createdAt: Timestamp(millisecondsSinceEpoch: row[2])
            )
        }
    }

    private static func append(_ event: OrderEvent, _ db: Database) throws {
        try db.cachedStatement(sql: SQLiteSchema.insertEvent).execute(arguments: [
            event.orderID.description, event.sequence, event.kind.rawValue, event.at.millisecondsSinceEpoch,
            event.amount, event.reference, event.statusAfter.rawValue,
        ])
    }

    private static func arguments(of order: Order) -> StatementArguments {
        [
            order.id.description, order.merchantID, order.outTradeNo, order.amount, order.currency.code,
            order.description, order.status.rawValue, order.refundedAmount, order.paymentID,
            order.closeReason?.rawValue, order.createdAt.millisecondsSinceEpoch,
            order.expiresAt.millisecondsSinceEpoch, order.paidAt?.millisecondsSinceEpoch,
            order.closedAt?.millisecondsSinceEpoch, order.updatedAt.millisecondsSinceEpoch, order.revision,
            order.keyStatus.rawValue,
        ]
    }

    private static func updateArguments(of order: Order) -> StatementArguments {
        [
            order.status.rawValue, order.refundedAmount, order.paymentID, order.closeReason?.rawValue,
            order.paidAt?.millisecondsSinceEpoch, order.closedAt?.millisecondsSinceEpoch,
            order.updatedAt.millisecondsSinceEpoch, order.revision, order.keyStatus.rawValue, order.id.description,
        ]
    }

    /// Decodes a row of ``SQLiteSchema/orderColumns``.
    private static func order(from row: Row) throws -> Order {
        let idText: String = row[0]
        let currencyCode: String = row[4]
        let statusText: String = row[6]
        let closeReasonText: String? = row[9]
        let keyStatusText: String = row[16]
        guard let currency = Currency(code: currencyCode), let status = OrderStatus(rawValue: statusText),
            let keyStatus = MerchantKeyStatus(rawValue: keyStatusText)
        else {
            throw StoreError("order \(idText) has an unknown currency, status or key status")
        }
        let paidAt: Int64? = row[12]
        let closedAt: Int64? = row[13]
        return Order(
            id: try OrderID(parsing: idText), merchantID: row[1], outTradeNo: row[2], amount: row[3],
            currency: currency, description: row[5], status: status, refundedAmount: row[7], paymentID: row[8],
            closeReason: closeReasonText.flatMap(CloseReason.init(rawValue:)),
            createdAt: Timestamp(millisecondsSinceEpoch: row[10]),
            expiresAt: Timestamp(millisecondsSinceEpoch: row[11]),
            paidAt: paidAt.map(Timestamp.init(millisecondsSinceEpoch:)),
            closedAt: closedAt.map(Timestamp.init(millisecondsSinceEpoch:)),
            updatedAt: Timestamp(millisecondsSinceEpoch: row[14]), revision: row[15], keyStatus: keyStatus
        )
    }
}
