import OrderCellPlatform
import CellRouting
import Logging
import OrderModel
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// A cell's storage on PostgreSQL: a primary for writes and strong reads,
/// replicas for `consistency=eventual` reads.
///
/// Every call has a client-side deadline (``PostgresCellConfiguration/callTimeout``)
/// on top of the server's `statement_timeout`. Commands lock the order row
/// (`SELECT … FOR UPDATE`) so racing payments and refunds are serialised.
/// Replica lag is measured continuously; a replica behind by more than
/// ``PostgresCellConfiguration/maximumReplicaLag`` is left out of reads,
/// which then fall back to the primary; when the primary is down, eventual
/// reads are served by any replica that answers.
///
/// The store is a `Service`: its connection pools and lag measurements live
/// in ``run()``, which its process runs in its service group (or
/// ``withStore(_:applicationName:logger:_:)`` for one task). Calls wait for
/// a connection until `run()` has started; `run()` returns, with every
/// connection closed, on graceful shutdown, cancellation or ``close()``.
public final class PostgresOrderStore: OrderStore, Service {
    public let configuration: PostgresCellConfiguration
    let primary: PostgresClient
    private let replicas: [Replica]
    private let machine = OrderStateMachine()
    let logger: Logger
    private let closing = AsyncStream<Never>.makeStream()

    /// One replica and the lag last measured on it (`nil`: not reachable).
    final class Replica: Sendable {
        let endpoint: PostgresEndpoint
        let client: PostgresClient
        let lag = Mutex<Duration?>(nil)
        init(endpoint: PostgresEndpoint, client: PostgresClient) {
            self.endpoint = endpoint
            self.client = client
        }
    }

    /// A store of the cell's servers; nothing connects until ``run()``.
    public init(_ configuration: PostgresCellConfiguration, applicationName: String = "ordercell-cell", logger: Logger = Logger(label: "ordercell.postgres")) {
        self.configuration = configuration
        self.logger = logger
        self.primary = PostgresClient(
            configuration: configuration.clientConfiguration(for: configuration.primary, applicationName: applicationName),
            backgroundLogger: logger
        )
        self.replicas = configuration.replicas.map { endpoint in
            Replica(
                endpoint: endpoint,
                client: PostgresClient(
                    configuration: configuration.clientConfiguration(for: endpoint, applicationName: applicationName),
                    backgroundLogger: logger
                )
            )
        }
    }

    /// Runs the connection pools and the replicas' lag measurements until a
    /// graceful shutdown, cancellation or ``close()``; returns once every
    /// connection is closed.
    public func run() async {
        let lagInterval = Duration.milliseconds(250)
        let deadline = configuration.callTimeout
        let (primary, replicas, logger, closed) = (self.primary, self.replicas, self.logger, closing.stream)
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await primary.run() }
                for replica in replicas {
                    group.addTask { await replica.client.run() }
                    group.addTask { await Self.measureLag(of: replica, every: lagInterval, deadline: deadline, logger: logger) }
                }
                // Until close() finishes the stream, or the task is cancelled.
                for await _ in closed {}
                group.cancelAll()
            }
        }
    }

    /// Ends ``run()``: calls under way fail, connections close.
    public func close() { closing.continuation.finish() }

    /// Migrates the primary's schema (a no-op when it is current); needs ``run()`` running.
    public func migrate() async throws {
        let (primary, logger) = (self.primary, self.logger)
        try await deadline { try await PostgresSchema.migrate(primary, logger: logger) }
    }

    /// Runs `body` with a store of `configuration` whose schema is migrated,
    /// then closes it and waits for its connections to close: for tools that
    /// use a store for one task rather than for a process's life.
    public static func withStore<T: Sendable>(
        _ configuration: PostgresCellConfiguration, applicationName: String = "ordercell-cell",
        logger: Logger = Logger(label: "ordercell.postgres"), _ body: (PostgresOrderStore) async throws -> T
    ) async throws -> T {
        let store = PostgresOrderStore(configuration, applicationName: applicationName, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            do {
                try await store.migrate()
                let result = try await body(store)
                store.close()
                try await group.waitForAll()
                return result
            } catch {
                store.close()
                try? await group.waitForAll()
                throw error
            }
        }
    }

    // MARK: - OrderStore

    public func insert(_ order: Order) async throws -> StoreInsertOutcome {
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            var inserted = false
            for try await _ in try await primary.execute(InsertOrderWithEvent(order: order), logger: logger) { inserted = true }
            if inserted { return .inserted(order) }
            for try await existing in try await primary.execute(
                SelectOrderByTradeNo(merchantID: order.merchantID, outTradeNo: order.outTradeNo), logger: logger
            ) {
                return .existing(existing)
            }
            throw StoreError("order \(order.merchantID)/\(order.outTradeNo) conflicted but cannot be read")
        }
    }

    /// One statement for the whole batch: one commit, and so one wait for
    /// the synchronous replica, for every order in it. Orders that conflict
    /// are read back afterwards, like ``insert(_:)`` does.
    public func insertBatch(_ orders: [Order]) async throws -> [StoreInsertOutcome] {
        guard orders.count > 1, orders.allSatisfy(InsertNewOrders.accepts) else {
            var outcomes: [StoreInsertOutcome] = []
            for order in orders { outcomes.append(try await insert(order)) }
            return outcomes
        }
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            var inserted = Set<String>()
            inserted.reserveCapacity(orders.count)
            for try await id in try await primary.execute(InsertNewOrders(orders: orders), logger: logger) { inserted.insert(id) }
            // The creates that met an earlier order (client retries, or two
            // creates of one key in the batch) read theirs back in one query.
            let repeats = orders.filter { !inserted.contains($0.id.description) }
            var earlier: [TradeKey: Order] = [:]
            if !repeats.isEmpty {
                let keys = repeats.map { (merchantID: $0.merchantID, outTradeNo: $0.outTradeNo) }
                for try await row in try await primary.execute(SelectOrdersByTradeNos(keys: keys), logger: logger) {
                    earlier[TradeKey(row.merchantID, row.outTradeNo)] = row
                }
            }
            return try orders.map { order in
                if inserted.contains(order.id.description) { return .inserted(order) }
                guard let existing = earlier[TradeKey(order.merchantID, order.outTradeNo)] else {
                    throw StoreError("order \(order.merchantID)/\(order.outTradeNo) conflicted but cannot be read")
                }
                return .existing(existing)
            }
        }
    }

    public var batchesInserts: Bool { true }

    public func order(_ id: OrderID, consistency: ReadConsistency) async throws -> Order? {
        let key = id.description
        switch consistency {
        case .strong:
            return try await readOne(SelectOrderByID(orderID: key), on: primary)
        case .eventual:
            return try await readEventually(SelectOrderByID(orderID: key))
        }
    }

    public func order(_ key: MerchantKey, consistency: ReadConsistency) async throws -> Order? {
        let statement = SelectOrderByTradeNo(merchantID: key.merchantID, outTradeNo: key.outTradeNo)
        switch consistency {
        case .strong: return try await readOne(statement, on: primary)
        case .eventual: return try await readEventually(statement)
        }
    }

    public func apply(_ command: OrderCommand, to id: OrderID, now: Timestamp) async throws -> OrderStateMachine.Decision {
        let primary = self.primary
        let logger = self.logger
        let machine = self.machine
        let key = id.description
        let result: Result<OrderStateMachine.Decision, OrderError> = try await deadline {
            do {
                return try await primary.withTransaction(logger: logger) { connection -> Result<OrderStateMachine.Decision, OrderError> in
                    var order: Order?
                    for try await row in try await connection.execute(LockOrderByID(orderID: key), logger: logger) { order = row }
                    guard let order else { return .failure(OrderError(.orderNotFound, "no order \(key)")) }
                    var existingRefund: Refund?
                    if let refundID = command.refundID {
                        for try await row in try await connection.execute(SelectRefund(orderID: id, refundID: refundID), logger: logger) {
                            existingRefund = row
                        }
                    }
                    let decision: OrderStateMachine.Decision
                    do throws(OrderError) {
                        decision = try machine.decide(command, on: order, existingRefund: existingRefund, now: now)
                    } catch {
                        return .failure(error)
                    }
                    if case .changed(let next, let event, let refund) = decision {
                        _ = try await connection.execute(UpdateOrder(order: next), logger: logger)
                        if let refund { _ = try await connection.execute(InsertRefund(refund: refund), logger: logger) }
                        _ = try await connection.execute(InsertEvent(event: event), logger: logger)
                    }
                    return .success(decision)
                }
            } catch let error as PostgresTransactionError {
                throw StoreError("transaction on \(key) failed: \(String(reflecting: error.closureError ?? error.commitError ?? error))")
            }
        }
        return try result.get()
    }

    public func refunds(of id: OrderID) async throws -> [Refund] {
        let primary = self.primary
        let logger = self.logger
        let key = id.description
        return try await deadline {
            var refunds: [Refund] = []
            let rows = try await primary.query(
                "SELECT refund_id, amount, reason, created_at FROM refunds WHERE order_id = \(key) ORDER BY created_at, refund_id",
                logger: logger
            )
            for try await (refundID, amount, reason, createdAt) in rows.decode((String, Int64, String?, Int64).self) {
                refunds.append(Refund(refundID: refundID, orderID: id, amount: amount, reason: reason, createdAt: Timestamp(millisecondsSinceEpoch: createdAt)))
            }
            return refunds
        }
    }

    /// Transactions commit in another order than they take event ids, so
    /// the feed goes by (transaction id, event id) and stops short of the
    /// oldest transaction still running (`pg_snapshot_xmin`): an event whose
    /// transaction has not committed is never passed over (docs/events.md).
    public func eventFeed(after position: EventFeedPosition, limit: Int) async throws -> [FeedEvent] {
        let primary = self.primary
        let logger = self.logger
        let transaction = String(position.transaction)
        let event = position.event
        return try await deadline {
            var feed: [FeedEvent] = []
            let rows = try await primary.query(
                """
                SELECT e.txid::text, e.event_id, e.order_id, e.sequence, e.kind, e.at, e.amount, e.reference, e.status_after, o.merchant_id
                FROM order_events e JOIN orders o ON o.order_id = e.order_id
                WHERE (e.txid, e.event_id) > (\(transaction)::xid8, \(event)) AND e.txid < pg_snapshot_xmin(pg_current_snapshot())
                ORDER BY e.txid, e.event_id LIMIT \(limit)
                """,
                logger: logger
            )
            for try await (txid, eventID, orderText, sequence, kindText, at, amount, reference, statusText, merchantID) in rows.decode(
                (String, Int64, String, Int, String, Int64, Int64?, String?, String, String).self
            ) {
                guard let kind = OrderEventKind(rawValue: kindText), let status = OrderStatus(rawValue: statusText), let transaction = UInt64(txid) else {
                    throw StoreError("event \(eventID) has an unknown kind, status or transaction")
                }
                let event = OrderEvent(
                    orderID: try OrderID(parsing: orderText), sequence: sequence, kind: kind, at: Timestamp(millisecondsSinceEpoch: at), amount: amount,
                    reference: reference, statusAfter: status
                )
                feed.append(FeedEvent(position: EventFeedPosition(transaction: transaction, event: eventID), merchantID: merchantID, event: event))
            }
            // Nothing past a position this server has not reached yet: the reader's position comes from
            // another history (storage restored from a dump, or commits lost with a failed primary). Said,
            // not answered with an empty page forever.
            if feed.isEmpty, position.transaction > 0 {
                let rows = try await primary.query("SELECT pg_snapshot_xmax(pg_current_snapshot())::text", logger: logger)
                for try await next in rows.decode(String.self) where UInt64(next).map({ position.transaction >= $0 }) == true {
                    throw StoreError(
                        "feed position \(position) is past this server's transactions (next \(next)): the storage was restored or lost commits; read the feed again from a position before it"
                    )
                }
            }
            return feed
        }
    }

    public func events(of id: OrderID) async throws -> [OrderEvent] {
        let primary = self.primary
        let logger = self.logger
        let key = id.description
        return try await deadline {
            var events: [OrderEvent] = []
            let rows = try await primary.query(
                "SELECT sequence, kind, at, amount, reference, status_after FROM order_events WHERE order_id = \(key) ORDER BY sequence",
                logger: logger
            )
            for try await (sequence, kindText, at, amount, reference, statusText) in rows.decode((Int, String, Int64, Int64?, String?, String).self) {
                guard let kind = OrderEventKind(rawValue: kindText), let status = OrderStatus(rawValue: statusText) else {
                    throw StoreError("event \(key)/\(sequence) has an unknown kind or status")
                }
                events.append(
                    OrderEvent(orderID: id, sequence: sequence, kind: kind, at: Timestamp(millisecondsSinceEpoch: at), amount: amount, reference: reference, statusAfter: status)
                )
            }
            return events
        }
    }

    public func expiredOrders(at now: Timestamp, limit: Int) async throws -> [OrderID] {
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            var ids: [OrderID] = []
            let rows = try await primary.query(
                "SELECT order_id FROM orders WHERE status = 'CREATED' AND expires_at <= \(now.millisecondsSinceEpoch) ORDER BY expires_at LIMIT \(limit)",
                logger: logger
            )
            for try await text in rows.decode(String.self) { ids.append(try OrderID(parsing: text)) }
            return ids
        }
    }

    public func reserveSequenceSegment(size: Int64) async throws -> ClosedRange<Int64> {
        precondition(size > 0)
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            for try await next in try await primary.execute(ReserveSequence(size: size), logger: logger) {
                return (next - size)...(next - 1)
            }
            throw StoreError("sequence reservation returned no row")
        }
    }

    public func purgeOrders(of merchantID: String, createdBefore cutoff: Timestamp, limit: Int) async throws -> Int {
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            // One statement: the foreign keys are checked at its end, after the refunds and events are gone.
            let rows = try await primary.query(
                """
                WITH doomed AS (
                    SELECT order_id FROM orders WHERE merchant_id = \(merchantID) AND created_at < \(cutoff.millisecondsSinceEpoch) LIMIT \(limit)
                ), events AS (
                    DELETE FROM order_events WHERE order_id IN (SELECT order_id FROM doomed)
                ), refunds AS (
                    DELETE FROM refunds WHERE order_id IN (SELECT order_id FROM doomed)
                ), deleted AS (
                    DELETE FROM orders WHERE order_id IN (SELECT order_id FROM doomed) RETURNING 1
                ), keys AS (
                    DELETE FROM merchant_keys WHERE merchant_id = \(merchantID) AND created_at < \(cutoff.millisecondsSinceEpoch)
                )
                SELECT count(*) FROM deleted
                """,
                logger: logger
            )
            for try await count in rows.decode(Int.self) { return count }
            return 0
        }
    }

    public func orderCount() async throws -> Int {
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            for try await count in try await primary.query("SELECT count(*) FROM orders", logger: logger).decode(Int.self) { return count }
            return 0
        }
    }

    /// Whether the server this store writes to is a standby (in recovery):
    /// a demoted primary, or a stale route. A cell never writes there.
    public func primaryIsInRecovery() async throws -> Bool {
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            for try await inRecovery in try await primary.query("SELECT pg_is_in_recovery()", logger: logger).decode(Bool.self) { return inRecovery }
            return true
        }
    }

    // MARK: - Key status of orders

    public func unverifiedOrders(createdBefore cutoff: Timestamp, after: OrderListPosition?, limit: Int) async throws -> [Order] {
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            var orders: [Order] = []
            let rows = try await primary.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT \(PostgresSchema.orderColumns) FROM orders WHERE key_status IN ('RESERVED', 'UNINDEXED') AND created_at < $1 \
                        AND (created_at, order_id) > ($3, $4) ORDER BY created_at, order_id LIMIT $2
                        """,
                    binds: {
                        var bindings = PostgresBindings(capacity: 4)
                        bindings.append(cutoff.millisecondsSinceEpoch)
                        bindings.append(limit)
                        bindings.append(after?.createdAt.millisecondsSinceEpoch ?? Int64.min)
                        bindings.append(after?.id.description ?? "")
                        return bindings
                    }()
                ),
                logger: logger
            )
            for try await row in rows { orders.append(try decodeOrder(row)) }
            return orders
        }
    }

    public func setKeyStatus(_ status: MerchantKeyStatus, of ids: [OrderID]) async throws {
        guard !ids.isEmpty else { return }
        let primary = self.primary
        let logger = self.logger
        let keys = ids.map(\.description)
        try await deadline {
            _ = try await primary.query("UPDATE orders SET key_status = \(status.rawValue) WHERE order_id = ANY(\(keys))", logger: logger)
        }
    }

    /// One transaction and a few statements for the whole page (the
    /// reconciler's): the fence is read under `ROW SHARE` on `merchant_keys`,
    /// which a freeze waits for, so keys of slots frozen then fail alone and
    /// no slot freezes meanwhile; the page's entries are locked in one
    /// statement, decided one by one (``MerchantKeyIndex/claim(_:key:cell:order:now:)``),
    /// and written in one insert and one update. A key whose entry a bind
    /// wrote between the lock and the insert is claimed again on its own.
    public func claimMerchantKeys(_ claims: [(key: MerchantKey, order: OrderID)], now: Timestamp) async throws -> [Result<MerchantKeyClaim, OrderError>] {
        if claims.isEmpty { return [] }
        let primary = self.primary
        let logger = self.logger
        let items = claims.map { ($0.key, $0.order) }
        return try await deadline {
            try await Self.indexTransaction(on: primary, logger: logger, "index batch failed") { connection -> [Result<MerchantKeyClaim, OrderError>] in
                try await connection.query("LOCK TABLE merchant_keys IN ROW SHARE MODE", logger: logger)
                var frozen: Set<Int> = []
                for try await slot in try await connection.execute(SelectFrozenSlots(), logger: logger) { frozen.insert(slot) }
                let open = items.indices.filter { !frozen.contains(items[$0].0.indexSlot) }
                var stored: [MerchantKey: MerchantKeyEntry] = [:]
                let keys = Array(Set(open.map { items[$0].0 }))
                if !keys.isEmpty {
                    for try await entry in try await connection.execute(LockMerchantKeys(keys: keys), logger: logger) { stored[entry.key] = entry }
                }
                var answers = [MerchantKeyClaim?](repeating: nil, count: items.count)
                var written: [MerchantKey: MerchantKeyEntry] = [:]
                for index in open {
                    let (key, orderID) = items[index]
                    let decision = MerchantKeyIndex.claim(written[key] ?? stored[key], key: key, cell: orderID.cell, order: orderID, now: now)
                    if let write = decision.write { written[key] = write }
                    answers[index] = decision.answer
                }
                let inserts = written.values.filter { stored[$0.key] == nil }
                let updates = written.values.filter { stored[$0.key] != nil }
                var inserted = Set<MerchantKey>()
                if !inserts.isEmpty {
                    for try await key in try await connection.execute(InsertMerchantKeys(entries: inserts), logger: logger) { inserted.insert(key) }
                }
                if !updates.isEmpty {
                    var count = 0
                    for try await _ in try await connection.execute(UpdateMerchantKeys(entries: updates), logger: logger) { count += 1 }
                    guard count == updates.count else { throw StoreError("\(updates.count - count) locked index entries were not written") }
                }
                // Keys a bind reserved after the lock found none: decided again on the entry it wrote.
                let conflicted = open.filter { index in inserts.contains(where: { $0.key == items[index].0 }) && !inserted.contains(items[index].0) }
                for index in conflicted.sorted(by: { (items[$0].0.merchantID, items[$0].0.outTradeNo) < (items[$1].0.merchantID, items[$1].0.outTradeNo) }) {
                    let (key, orderID) = items[index]
                    answers[index] = nil
                    for _ in 0..<3 where answers[index] == nil {
                        answers[index] = try await Self.lockDecideWrite(key, on: connection, logger: logger) {
                            MerchantKeyIndex.claim($0, key: key, cell: orderID.cell, order: orderID, now: now)
                        }
                    }
                }
                return try items.indices.map { index -> Result<MerchantKeyClaim, OrderError> in
                    let slot = items[index].0.indexSlot
                    if frozen.contains(slot) { return .failure(OrderError.indexSlotFrozen(slot)) }
                    guard let answer = answers[index] else { throw StoreError("an index entry kept changing under a batch of claims") }
                    return .success(answer)
                }
            }
        }
    }

    // MARK: - Merchant-key index

    /// `SELECT … FOR UPDATE`, the decision, then the write, in one
    /// transaction. Two transactions that both find no entry race to insert
    /// it: the loser's insert writes nothing, and it decides again on the
    /// winner's entry.
    public func updateMerchantKey<Answer: Sendable>(
        _ key: MerchantKey, _ decide: @escaping @Sendable (MerchantKeyEntry?) -> MerchantKeyIndex.Decision<Answer>
    ) async throws -> Answer {
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            for _ in 0..<3 {
                let answer = try await Self.indexTransaction(on: primary, logger: logger, "index transaction on \(key) failed") { connection in
                    try await Self.lockDecideWrite(key, on: connection, logger: logger, decide)
                }
                if let answer { return answer }
            }
            throw StoreError("the index entry of \(key) kept changing under three transactions")
        }
    }

    /// Locks the key's entry, decides, and writes the decision, inside the
    /// caller's transaction. Nil when another transaction inserted the entry
    /// first (decide again, in a new transaction). A frozen slot refuses the
    /// write (``OrderError/indexSlotFrozen(_:)``); a decision that writes
    /// nothing is answered even then.
    private static func lockDecideWrite<Answer: Sendable>(
        _ key: MerchantKey, on connection: PostgresConnection, logger: Logger,
        _ decide: (MerchantKeyEntry?) -> MerchantKeyIndex.Decision<Answer>
    ) async throws -> Answer? {
        var entry: MerchantKeyEntry?
        for try await row in try await connection.execute(LockMerchantKey(key: key), logger: logger) { entry = row }
        let decision = decide(entry)
        guard let write = decision.write else { return decision.answer }
        var written = false
        if entry == nil {
            for try await _ in try await connection.execute(InsertMerchantKey(entry: write), logger: logger) { written = true }
            if written { return decision.answer }
            for try await _ in try await connection.execute(SelectSlotFrozen(slot: key.indexSlot), logger: logger) {
                throw OrderError.indexSlotFrozen(key.indexSlot)
            }
            return nil
        }
        for try await _ in try await connection.execute(UpdateMerchantKey(entry: write), logger: logger) { written = true }
        guard written else { throw OrderError.indexSlotFrozen(key.indexSlot) }
        return decision.answer
    }

    /// A transaction of the index: refusals (a frozen slot) come out as they
    /// are, any other failure as a storage fault. One that PostgreSQL chose
    /// to break a deadlock (or a serialization failure) committed nothing
    /// and runs again, up to three times: batches of binds, claims and bound
    /// creates lock their keys in phases of their own.
    private static func indexTransaction<T: Sendable>(
        on client: PostgresClient, logger: Logger, _ what: @autoclosure () -> String,
        _ body: (PostgresConnection) async throws -> sending T
    ) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await client.withTransaction(logger: logger, body)
            } catch let error as PostgresTransactionError {
                if let refusal = error.closureError as? OrderError { throw refusal }
                let state = (error.closureError as? PSQLError)?.serverInfo?[.sqlState]
                if attempt < 3, state == "40P01" || state == "40001" {
                    logger.notice("index transaction chosen to break a deadlock; running it again", metadata: ["sqlstate": "\(state ?? "")"])
                    continue
                }
                throw StoreError("\(what()): \(String(reflecting: error.closureError ?? error.commitError ?? error))")
            }
        }
    }

    /// Two statements and one commit (one wait for the synchronous
    /// replica) for all of them, as ``insertBatch(_:)`` does for orders: the
    /// new keys are reserved by one `INSERT … ON CONFLICT DO NOTHING`, the
    /// known ones read back by one `SELECT`. A bind of a known key writes
    /// nothing (``MerchantKeyIndex/bind(_:key:candidate:attempt:now:)``), so
    /// reading it without a lock decides alike; a move that commits meanwhile
    /// is seen by the create's own claim, like any move after the bind.
    public func bindMerchantKeys(_ requests: [MerchantKeyBindRequest], now: Timestamp) async throws -> [Result<MerchantKeyBinding, OrderError>] {
        guard !requests.isEmpty else { return [] }
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            var reserved: [MerchantKey: UInt64] = [:]
            for try await row in try await primary.execute(InsertNewMerchantKeys(requests: requests, now: now), logger: logger) {
                reserved[MerchantKey(merchantID: row.merchantID, outTradeNo: row.outTradeNo)] = UInt64(bitPattern: row.attempt)
            }
            var known: [MerchantKey: MerchantKeyEntry] = [:]
            let rest = requests.filter { reserved[$0.key] == nil }
            if !rest.isEmpty {
                for try await entry in try await primary.execute(SelectMerchantKeys(keys: rest.map(\.key)), logger: logger) {
                    known[entry.key] = entry
                }
            }
            // A new key that was neither reserved nor found: its slot is frozen (read only then).
            var frozen: Set<Int> = []
            if requests.contains(where: { reserved[$0.key] == nil && known[$0.key] == nil }) {
                for try await slot in try await primary.execute(SelectFrozenSlots(), logger: logger) { frozen.insert(slot) }
            }
            return try requests.map { request -> Result<MerchantKeyBinding, OrderError> in
                if let attempt = reserved[request.key] {
                    // Reserved by this batch: for this request, or for an earlier one of the same key in it.
                    let entry = MerchantKeyEntry(key: request.key, owner: requests.first { $0.key == request.key && $0.attempt == attempt }?.candidate ?? request.candidate, attempt: attempt, createdAt: now)
                    return .success(MerchantKeyIndex.bind(entry, key: request.key, candidate: request.candidate, attempt: request.attempt, now: now).answer)
                }
                guard let entry = known[request.key] else {
                    if frozen.contains(request.key.indexSlot) { return .failure(OrderError.indexSlotFrozen(request.key.indexSlot)) }
                    throw StoreError("merchant key \(request.key) was neither reserved nor found")
                }
                return .success(MerchantKeyIndex.bind(entry, key: request.key, candidate: request.candidate, attempt: request.attempt, now: now).answer)
            }
        }
    }

    public var batchesBinds: Bool { true }

    /// In the common case — new keys — one statement, so one round trip and
    /// one commit (one wait for the synchronous replica) for the whole batch
    /// (``InsertBoundOrders``). The creates it leaves (known keys: repeats,
    /// reservations; frozen slots), or the whole batch when that statement
    /// fails on an order made without the index or on a deadlock, are
    /// decided by one transaction (``insertBound(_:cell:now:on:logger:)``).
    public func insertBound(_ creates: [BoundInsert], now: Timestamp) async throws -> [Result<BoundInsertOutcome, OrderError>] {
        guard let cell = creates.first?.order.id.cell else { return [] }
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            var inserted = Set<String>()
            if creates.allSatisfy({ InsertNewOrders.accepts($0.order) }) {
                do {
                    for try await id in try await primary.execute(InsertBoundOrders(creates: creates, cell: cell, now: now), logger: logger) {
                        inserted.insert(id)
                    }
                } catch let error as PSQLError where ["23505", "40P01", "40001"].contains(error.serverInfo?[.sqlState]) {
                    logger.debug("bound create batch left to a transaction", metadata: ["sqlstate": "\(error.serverInfo?[.sqlState] ?? "")"])
                }
            }
            let rest = creates.filter { !inserted.contains($0.order.id.description) }
            var decided = try await rest.isEmpty ? [] : Self.insertBound(rest, cell: cell, now: now, on: primary, logger: logger)[...]
            return creates.map { create in
                inserted.contains(create.order.id.description) ? .success(.inserted(create.order)) : decided.removeFirst()
            }
        }
    }

    /// One transaction and one commit for the batch: the new keys are
    /// written already claimed by their orders (one insert, which also locks
    /// `merchant_keys` for the transaction, so the fence read later stays as
    /// it is), and the orders inserted (one statement). Known keys (repeats,
    /// reservations) are locked by one select and decided
    /// (``MerchantKeyIndex/boundCreate(_:key:cell:order:attempt:now:)``);
    /// their claims, and the rare new key whose order met an earlier one
    /// (made without the index), are written by one update.
    private static func insertBound(
        _ creates: [BoundInsert], cell: CellID, now: Timestamp, on primary: PostgresClient, logger: Logger
    ) async throws -> [Result<BoundInsertOutcome, OrderError>] {
        try await Self.indexTransaction(on: primary, logger: logger, "bound create batch failed") { connection -> [Result<BoundInsertOutcome, OrderError>] in
            // New keys, claimed by the first create of each in the batch.
            var entries: [MerchantKey: MerchantKeyEntry] = [:]
            var written: [MerchantKey: String] = [:]
            for try await row in try await connection.execute(InsertClaimedMerchantKeys(creates: creates, cell: cell, now: now), logger: logger) {
                written[row.key] = row.holder
            }
            for create in creates where written[create.order.merchantKey] == create.order.id.description {
                entries[create.order.merchantKey] = MerchantKeyEntry(
                    key: create.order.merchantKey, owner: cell, holder: create.order.id, attempt: create.attempt, createdAt: now
                )
            }
            let known = Array(Set(creates.map(\.order.merchantKey)).filter { written[$0] == nil })
            var frozen: Set<Int> = []
            if !known.isEmpty {
                for try await entry in try await connection.execute(LockMerchantKeys(keys: known), logger: logger) { entries[entry.key] = entry }
                for try await slot in try await connection.execute(SelectFrozenSlots(), logger: logger) { frozen.insert(slot) }
            }
            // Each create in turn, as one after the other would: a key twice in the batch meets its first order.
            var outcomes = [Result<BoundInsertOutcome, OrderError>?](repeating: nil, count: creates.count)
            var toInsert: [(index: Int, order: Order, claim: MerchantKeyEntry?)] = []
            for (index, create) in creates.enumerated() {
                var order = create.order
                let key = order.merchantKey
                if written[key] == order.id.description {
                    toInsert.append((index, order, nil))  // its entry is written, claimed by it
                    continue
                }
                switch MerchantKeyIndex.boundCreate(entries[key], key: key, cell: cell, order: order.id, attempt: create.attempt, now: now) {
                case .elsewhere(let binding):
                    outcomes[index] = .success(.boundElsewhere(binding))
                case .here(let claim):
                    if claim != nil, frozen.contains(key.indexSlot) || entries[key] == nil {
                        outcomes[index] = .failure(OrderError.indexSlotFrozen(key.indexSlot))
                        continue
                    }
                    if let claim { entries[key] = claim } else { order.keyStatus = .reserved }
                    toInsert.append((index, order, claim))
                }
            }
            var inserted = Set<String>()
            let orders = toInsert.map(\.order)
            if orders.count > 1, orders.allSatisfy(InsertNewOrders.accepts) {
                for try await id in try await connection.execute(InsertNewOrders(orders: orders), logger: logger) { inserted.insert(id) }
            } else {
                for order in orders {
                    for try await _ in try await connection.execute(InsertOrderWithEvent(order: order), logger: logger) {
                        inserted.insert(order.id.description)
                    }
                }
            }
            let repeats = orders.filter { !inserted.contains($0.id.description) }
            var earlier: [TradeKey: Order] = [:]
            if !repeats.isEmpty {
                let keys = repeats.map { (merchantID: $0.merchantID, outTradeNo: $0.outTradeNo) }
                for try await row in try await connection.execute(SelectOrdersByTradeNos(keys: keys), logger: logger) {
                    earlier[TradeKey(row.merchantID, row.outTradeNo)] = row
                }
            }
            // The claims of known entries whose orders were inserted; and a new key whose order met an earlier one
            // (made without the index) is only reserved for this cell, where the reconciler claims it for that order.
            var updates: [MerchantKeyEntry] = toInsert.filter { inserted.contains($0.order.id.description) }.compactMap(\.claim)
            for create in creates where written[create.order.merchantKey] == create.order.id.description && !inserted.contains(create.order.id.description) {
                updates.append(MerchantKeyEntry(key: create.order.merchantKey, owner: cell, attempt: create.attempt, createdAt: now))
            }
            if !updates.isEmpty {
                var count = 0
                for try await _ in try await connection.execute(UpdateMerchantKeys(entries: updates), logger: logger) { count += 1 }
                guard count == updates.count else { throw StoreError("\(updates.count - count) index entries of a bound create batch were not written") }
            }
            for item in toInsert {
                if inserted.contains(item.order.id.description) {
                    outcomes[item.index] = .success(.inserted(item.order))
                } else if let existing = earlier[TradeKey(item.order.merchantID, item.order.outTradeNo)] {
                    outcomes[item.index] = .success(.existing(existing))
                } else {
                    throw StoreError("order \(item.order.merchantID)/\(item.order.outTradeNo) conflicted but cannot be read")
                }
            }
            return try outcomes.map { outcome in
                guard let outcome else { throw StoreError("a bound create was left undecided") }
                return outcome
            }
        }
    }

    public func merchantKeyEntry(_ key: MerchantKey, consistency: ReadConsistency) async throws -> MerchantKeyEntry? {
        switch consistency {
        case .strong: return try await readOne(SelectMerchantKey(key: key), on: primary)
        case .eventual: return try await readEventually(SelectMerchantKey(key: key))
        }
    }

    public func movedMerchantKeys(updatedBefore cutoff: Timestamp, limit: Int) async throws -> [MerchantKeyEntry] {
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            var entries: [MerchantKeyEntry] = []
            let rows = try await primary.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT \(PostgresSchema.merchantKeyColumns) FROM merchant_keys WHERE abandoned <> '' AND updated_at < $1 \
                        ORDER BY updated_at LIMIT $2
                        """,
                    binds: {
                        var bindings = PostgresBindings(capacity: 2)
                        bindings.append(cutoff.millisecondsSinceEpoch)
                        bindings.append(limit)
                        return bindings
                    }()
                ),
                logger: logger
            )
            for try await row in rows { entries.append(try decodeMerchantKeyEntry(row)) }
            return entries
        }
    }

    // MARK: - Moving index slots

    /// A freeze takes `EXCLUSIVE` on `merchant_keys` for its own short
    /// transaction: it waits for every index transaction under way (they
    /// hold `ROW SHARE` or `ROW EXCLUSIVE` on the table) and holds back new
    /// ones until it commits; their writing statements then see the fence.
    /// Plain reads go on meanwhile. The wait for the lock is bounded (1 s).
    public func setIndexSlots(_ slots: [Int], frozen: Bool) async throws {
        let primary = self.primary
        let logger = self.logger
        let numbers = slots.map(Int32.init)
        try await deadline {
            try await Self.indexTransaction(on: primary, logger: logger, "changing index slot fences failed") { connection in
                // Below the cell call's deadline: a freeze that cannot get the lock fails where its caller sees it.
                try await connection.query("SET LOCAL lock_timeout = '1s'", logger: logger)
                // A thaw takes the lock too: it then comes after any freeze still under way, never before it.
                try await connection.query("LOCK TABLE merchant_keys IN EXCLUSIVE MODE", logger: logger)
                if frozen {
                    try await connection.query(
                        "INSERT INTO index_slot_fences (slot) SELECT unnest(\(numbers)::int4[]) ON CONFLICT (slot) DO NOTHING", logger: logger
                    )
                } else {
                    try await connection.query("DELETE FROM index_slot_fences WHERE slot = ANY(\(numbers)::int4[])", logger: logger)
                }
            }
        }
    }

    public func frozenIndexSlots() async throws -> Set<Int> {
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            var frozen: Set<Int> = []
            for try await slot in try await primary.execute(SelectFrozenSlots(), logger: logger) { frozen.insert(slot) }
            return frozen
        }
    }

    public func frozenMerchantKeys(inSlots slots: Set<Int>, after: MerchantKey?, limit: Int) async throws -> MerchantKeyPage {
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            var frozen: Set<Int> = []
            for try await slot in try await primary.execute(SelectFrozenSlots(), logger: logger) { frozen.insert(slot) }
            if let open = slots.subtracting(frozen).min() {
                throw OrderError(.invalidState, "index slot \(open) is not frozen in this cell: its entries may still change")
            }
            var scanned: [MerchantKeyEntry] = []
            for try await entry in try await primary.execute(SelectMerchantKeysAfter(after: after, limit: limit), logger: logger) {
                scanned.append(entry)
            }
            return MerchantKeyPage(
                entries: scanned.filter { slots.contains($0.key.indexSlot) }, next: scanned.count < limit ? nil : scanned.last?.key
            )
        }
    }

    public func importMerchantKeys(_ entries: [MerchantKeyEntry]) async throws {
        guard !entries.isEmpty else { return }
        let primary = self.primary
        let logger = self.logger
        try await deadline {
            _ = try await primary.execute(ImportMerchantKeys(entries: entries), logger: logger)
        }
    }

    public func deleteFrozenMerchantKeys(_ keys: [MerchantKey]) async throws -> Int {
        guard !keys.isEmpty else { return 0 }
        let primary = self.primary
        let logger = self.logger
        return try await deadline {
            var deleted = 0
            for try await _ in try await primary.execute(DeleteFrozenMerchantKeys(keys: keys), logger: logger) { deleted += 1 }
            return deleted
        }
    }

    // MARK: - Replicas

    /// The replicas and their measured lag, for operators and tests.
    public var replicaLag: [(endpoint: PostgresEndpoint, lag: Duration?)] {
        replicas.map { ($0.endpoint, $0.lag.withLock { $0 }) }
    }

    /// Reads from a fresh replica, else the primary, else any replica that answers.
    ///
    /// A row a replica does not have yet (created a moment ago, not replayed)
    /// is looked up on the primary before the answer is "not found".
    private func readEventually<Statement: PostgresPreparedStatement>(_ statement: Statement) async throws -> Statement.Row?
    where Statement.Row: Sendable {
        let maximumLag = configuration.maximumReplicaLag
        let fresh = replicas.filter { replica in replica.lag.withLock { $0.map { $0 <= maximumLag } ?? false } }
        var lastError: (any Error)?
        var answeredWithoutRow = false
        for replica in fresh {
            do {
                if let row = try await readOne(statement, on: replica.client) { return row }
                answeredWithoutRow = true
                break
            } catch {
                lastError = error
            }
        }
        do { return try await readOne(statement, on: primary) } catch { lastError = error }
        if answeredWithoutRow { return nil }
        for replica in replicas where !fresh.contains(where: { $0 === replica }) {
            do { return try await readOne(statement, on: replica.client) } catch { lastError = error }
        }
        throw lastError ?? StoreError("no server of the cell answered")
    }

    private func readOne<Statement: PostgresPreparedStatement>(_ statement: Statement, on client: PostgresClient) async throws -> Statement.Row?
    where Statement.Row: Sendable {
        let logger = self.logger
        return try await deadline {
            for try await row in try await client.execute(statement, logger: logger) { return row }
            return nil
        }
    }

    private static func measureLag(of replica: Replica, every interval: Duration, deadline: Duration, logger: Logger) async {
        while !Task.isCancelled {
            do {
                let lag = try await withDeadline(deadline) {
                    // Caught up (nothing left to replay) counts as no lag, however old the last transaction is.
                    let rows = try await replica.client.query(
                        """
                        SELECT CASE WHEN pg_last_wal_receive_lsn() IS NULL THEN -1
                                    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                                    ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) * 1000, 0) END::BIGINT
                        """,
                        logger: logger
                    )
                    for try await milliseconds in rows.decode(Int64.self) { return milliseconds }
                    return Int64(-1)
                }
                replica.lag.withLock { $0 = lag >= 0 ? .milliseconds(lag) : nil }
            } catch {
                replica.lag.withLock { $0 = nil }
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Runs a call under the client-side deadline; database failures become ``StoreError``.
    func deadline<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        do {
            return try await withDeadline(configuration.callTimeout, body)
        } catch let error as OrderError {
            throw error
        } catch let error as StoreError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as DeadlineExceeded {
            throw StoreError("PostgreSQL \(configuration.primary): \(error)")
        } catch {
            throw StoreError("PostgreSQL \(configuration.primary): \(String(reflecting: error))")
        }
    }
}

/// A merchant's order key: `(merchant_id, out_trade_no)`.
private struct TradeKey: Hashable {
    var merchantID: String
    var outTradeNo: String
    init(_ merchantID: String, _ outTradeNo: String) {
        self.merchantID = merchantID
        self.outTradeNo = outTradeNo
    }
}
