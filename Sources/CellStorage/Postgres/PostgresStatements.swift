import OrderModel
import PostgresNIO

// The cell's hot statements, prepared once per connection.

extension PostgresBindings {
    mutating func appendOptional<Value: PostgresNonThrowingEncodable>(_ value: Value?) {
        if let value { append(value) } else { appendNull() }
    }
}

/// Decodes a row of ``PostgresSchema/orderColumns``.
func decodeOrder(_ row: PostgresRow) throws -> Order {
    let columns = row.makeRandomAccess()
    let idText = try columns[0].decode(String.self)
    guard let currency = Currency(code: try columns[4].decode(String.self)),
        let status = OrderStatus(rawValue: try columns[6].decode(String.self)),
        let keyStatus = MerchantKeyStatus(rawValue: try columns[16].decode(String.self))
    else { throw StoreError("order \(idText) has an unknown currency, status or key status") }
    return Order(
        id: try OrderID(parsing: idText), merchantID: try columns[1].decode(String.self),
        outTradeNo: try columns[2].decode(String.self), amount: try columns[3].decode(Int64.self), currency: currency,
        description: try columns[5].decode(String?.self), status: status,
        refundedAmount: try columns[7].decode(Int64.self), paymentID: try columns[8].decode(String?.self),
        closeReason: try columns[9].decode(String?.self).flatMap(CloseReason.init(rawValue:)),
        createdAt: Timestamp(millisecondsSinceEpoch: try columns[10].decode(Int64.self)),
        expiresAt: Timestamp(millisecondsSinceEpoch: try columns[11].decode(Int64.self)),
        paidAt: try columns[12].decode(Int64?.self).map(Timestamp.init(millisecondsSinceEpoch:)),
        closedAt: try columns[13].decode(Int64?.self).map(Timestamp.init(millisecondsSinceEpoch:)),
        updatedAt: Timestamp(millisecondsSinceEpoch: try columns[14].decode(Int64.self)),
        revision: try columns[15].decode(Int.self), keyStatus: keyStatus
    )
}

struct SelectOrderByID: PostgresPreparedStatement {
    static let name = "ordercell.SelectOrderByID"
    static let sql = "SELECT \(PostgresSchema.orderColumns) FROM orders WHERE order_id = $1"
    var orderID: String
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(orderID)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Order { try decodeOrder(row) }
}

struct LockOrderByID: PostgresPreparedStatement {
    static let name = "ordercell.LockOrderByID"
    static let sql = "SELECT \(PostgresSchema.orderColumns) FROM orders WHERE order_id = $1 FOR UPDATE"
    var orderID: String
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(orderID)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Order { try decodeOrder(row) }
}

struct SelectOrderByTradeNo: PostgresPreparedStatement {
    static let name = "ordercell.SelectOrderByTradeNo"
    static let sql = "SELECT \(PostgresSchema.orderColumns) FROM orders WHERE merchant_id = $1 AND out_trade_no = $2"
    var merchantID: String
    var outTradeNo: String
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(merchantID)
        bindings.append(outTradeNo)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Order { try decodeOrder(row) }
}

/// The orders of many `(merchant_id, out_trade_no)` keys at once: how a
/// batch of creates reads back the earlier orders it met, in one round trip
/// however many of its creates were repeats.
struct SelectOrdersByTradeNos: PostgresPreparedStatement {
    static let name = "ordercell.SelectOrdersByTradeNos"
    static let sql = """
        SELECT \(PostgresSchema.orderColumns) FROM orders \
        WHERE (merchant_id, out_trade_no) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        """
    var keys: [(merchantID: String, outTradeNo: String)]
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(keys.map(\.merchantID))
        bindings.append(keys.map(\.outTradeNo))
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Order { try decodeOrder(row) }
}

/// Inserts an order and its creation event in one statement (one round
/// trip, atomic), unless the merchant's `out_trade_no` exists already.
struct InsertOrderWithEvent: PostgresPreparedStatement {
    static let name = "ordercell.InsertOrderWithEvent"
    static let sql = """
        WITH inserted AS (
            INSERT INTO orders (\(PostgresSchema.orderColumns))
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $18)
            ON CONFLICT (merchant_id, out_trade_no) DO NOTHING
            RETURNING order_id
        )
        INSERT INTO order_events (order_id, sequence, kind, at, amount, reference, status_after)
        SELECT order_id, 1, $17, $11, $4, $3, $7 FROM inserted
        RETURNING order_id
        """
    var order: Order
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 18)
        bindings.append(order.id.description)
        bindings.append(order.merchantID)
        bindings.append(order.outTradeNo)
        bindings.append(order.amount)
        bindings.append(order.currency.code)
        bindings.appendOptional(order.description)
        bindings.append(order.status.rawValue)
        bindings.append(order.refundedAmount)
        bindings.appendOptional(order.paymentID)
        bindings.appendOptional(order.closeReason?.rawValue)
        bindings.append(order.createdAt.millisecondsSinceEpoch)
        bindings.append(order.expiresAt.millisecondsSinceEpoch)
        bindings.appendOptional(order.paidAt?.millisecondsSinceEpoch)
        bindings.appendOptional(order.closedAt?.millisecondsSinceEpoch)
        bindings.append(order.updatedAt.millisecondsSinceEpoch)
        bindings.append(order.revision)
        bindings.append(OrderEventKind.created.rawValue)
        bindings.append(order.keyStatus.rawValue)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> String { try row.decode(String.self) }
}

/// Inserts many new orders and their creation events in one statement
/// (columns as arrays, `unnest`ed), skipping those whose merchant's
/// `out_trade_no` exists already (also earlier in the same batch).
/// Returns the ids of the orders it inserted.
///
/// Rows go in in `(merchant_id, out_trade_no)` order: two batches of a
/// cell's services holding the same keys (a create retried on the other
/// service) then wait for each other in the same order and cannot deadlock.
/// Of two creates of one key in a batch the earlier one is stored (the
/// batch position breaks the tie; PostgreSQL's sort is not stable).
struct InsertNewOrders: PostgresPreparedStatement {
    static let name = "ordercell.InsertNewOrders"
    static let sql = """
        WITH batch AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::bool[], \
            $8::int8[], $9::int8[], $10::int8[], $13::text[]) WITH ORDINALITY \
            AS b(order_id, merchant_id, out_trade_no, amount, currency, description, has_description, created_at, expires_at, \
            revision, key_status, position)
        ), inserted AS (
            INSERT INTO orders (\(PostgresSchema.orderColumns))
            SELECT order_id, merchant_id, out_trade_no, amount, currency, CASE WHEN has_description THEN description END, \
            $11, 0, NULL, NULL, created_at, expires_at, NULL, NULL, created_at, revision, key_status FROM batch
            ORDER BY merchant_id COLLATE "C", out_trade_no COLLATE "C", position
            ON CONFLICT (merchant_id, out_trade_no) DO NOTHING
            RETURNING order_id, created_at, amount, out_trade_no
        )
        INSERT INTO order_events (order_id, sequence, kind, at, amount, reference, status_after)
        SELECT order_id, 1, $12, created_at, amount, out_trade_no, $11 FROM inserted
        RETURNING order_id
        """
    var orders: [Order]

    /// Only orders as a create makes them: status created, nothing paid, closed or refunded, updated when created.
    static func accepts(_ order: Order) -> Bool {
        order.status == .created && order.refundedAmount == 0 && order.paymentID == nil && order.closeReason == nil
            && order.paidAt == nil && order.closedAt == nil && order.updatedAt == order.createdAt
    }

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 13)
        bindings.append(orders.map { $0.id.description })
        bindings.append(orders.map(\.merchantID))
        bindings.append(orders.map(\.outTradeNo))
        bindings.append(orders.map(\.amount))
        bindings.append(orders.map { $0.currency.code })
        bindings.append(orders.map { $0.description ?? "" })
        bindings.append(orders.map { $0.description != nil })
        bindings.append(orders.map(\.createdAt.millisecondsSinceEpoch))
        bindings.append(orders.map(\.expiresAt.millisecondsSinceEpoch))
        bindings.append(orders.map { Int64($0.revision) })
        bindings.append(OrderStatus.created.rawValue)
        bindings.append(OrderEventKind.created.rawValue)
        bindings.append(orders.map(\.keyStatus.rawValue))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> String { try row.decode(String.self) }
}

struct UpdateOrder: PostgresPreparedStatement {
    static let name = "ordercell.UpdateOrder"
    static let sql = """
        UPDATE orders SET status = $1, refunded_amount = $2, payment_id = $3, close_reason = $4, paid_at = $5, \
        closed_at = $6, updated_at = $7, revision = $8, key_status = $9 WHERE order_id = $10
        """
    var order: Order
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 10)
        bindings.append(order.status.rawValue)
        bindings.append(order.refundedAmount)
        bindings.appendOptional(order.paymentID)
        bindings.appendOptional(order.closeReason?.rawValue)
        bindings.appendOptional(order.paidAt?.millisecondsSinceEpoch)
        bindings.appendOptional(order.closedAt?.millisecondsSinceEpoch)
        bindings.append(order.updatedAt.millisecondsSinceEpoch)
        bindings.append(order.revision)
        bindings.append(order.keyStatus.rawValue)
        bindings.append(order.id.description)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws {}
}

struct InsertEvent: PostgresPreparedStatement {
    static let name = "ordercell.InsertEvent"
    static let sql = """
        INSERT INTO order_events (order_id, sequence, kind, at, amount, reference, status_after) VALUES ($1, $2, $3, $4, $5, $6, $7)
        """
    var event: OrderEvent
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 7)
        bindings.append(event.orderID.description)
        bindings.append(event.sequence)
        bindings.append(event.kind.rawValue)
        bindings.append(event.at.millisecondsSinceEpoch)
        bindings.appendOptional(event.amount)
        bindings.appendOptional(event.reference)
        bindings.append(event.statusAfter.rawValue)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws {}
}

struct InsertRefund: PostgresPreparedStatement {
    static let name = "ordercell.InsertRefund"
    static let sql = "INSERT INTO refunds (order_id, refund_id, amount, reason, created_at) VALUES ($1, $2, $3, $4, $5)"
    var refund: Refund
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 5)
        bindings.append(refund.orderID.description)
        bindings.append(refund.refundID)
        bindings.append(refund.amount)
        bindings.appendOptional(refund.reason)
        bindings.append(refund.createdAt.millisecondsSinceEpoch)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws {}
}

struct SelectRefund: PostgresPreparedStatement {
    static let name = "ordercell.SelectRefund"
    static let sql = "SELECT amount, reason, created_at FROM refunds WHERE order_id = $1 AND refund_id = $2"
    var orderID: OrderID
    var refundID: String
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(orderID.description)
        bindings.append(refundID)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Refund {
        let (amount, reason, createdAt) = try row.decode((Int64, String?, Int64).self)
        return Refund(refundID: refundID, orderID: orderID, amount: amount, reason: reason, createdAt: Timestamp(millisecondsSinceEpoch: createdAt))
    }
}

struct ReserveSequence: PostgresPreparedStatement {
    static let name = "ordercell.ReserveSequence"
    static let sql = """
        INSERT INTO sequences (name, next_value) VALUES ('order', 1 + $1)
        ON CONFLICT (name) DO UPDATE SET next_value = sequences.next_value + $1
        RETURNING next_value
        """
    var size: Int64
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(size)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Int64 { try row.decode(Int64.self) }
}

/// Decodes a row of ``PostgresSchema/merchantKeyColumns``.
func decodeMerchantKeyEntry(_ row: PostgresRow) throws -> MerchantKeyEntry {
    let (merchantID, outTradeNo, owner, holder, attempt, abandoned, revision, createdAt, updatedAt) = try row.decode(
        (String, String, Int, String?, Int64, String, Int, Int64, Int64).self
    )
    let stored = try MerchantKeyRow(
        owner: owner, holder: holder, attempt: attempt, abandoned: abandoned, revision: revision, createdAt: createdAt, updatedAt: updatedAt
    )
    return stored.entry(for: MerchantKey(merchantID: merchantID, outTradeNo: outTradeNo))
}

/// A key's index entry (reads; ``LockMerchantKey`` inside the index's transactions).
struct SelectMerchantKey: PostgresPreparedStatement {
    static let name = "ordercell.SelectMerchantKey"
    static let sql = "SELECT \(PostgresSchema.merchantKeyColumns) FROM merchant_keys WHERE merchant_id = $1 AND out_trade_no = $2"
    var key: MerchantKey
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(key.merchantID)
        bindings.append(key.outTradeNo)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> MerchantKeyEntry { try decodeMerchantKeyEntry(row) }
}

/// A key's index entry, locked until the transaction ends (``PostgresOrderStore/updateMerchantKey(_:_:)``).
struct LockMerchantKey: PostgresPreparedStatement {
    static let name = "ordercell.LockMerchantKey"
    static let sql = "SELECT \(PostgresSchema.merchantKeyColumns) FROM merchant_keys WHERE merchant_id = $1 AND out_trade_no = $2 FOR UPDATE"
    var key: MerchantKey
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(key.merchantID)
        bindings.append(key.outTradeNo)
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> MerchantKeyEntry { try decodeMerchantKeyEntry(row) }
}

/// A new key's entry, unless another transaction wrote one first or its
/// slot is frozen (then no row comes back: ``SelectSlotFrozen`` tells which).
///
/// Every index write checks the slot's fence in the statement that writes,
/// after its transaction locked `merchant_keys` (here, or by
/// ``LockMerchantKey`` before it): a freeze takes `EXCLUSIVE` on the table,
/// so it waits for such a transaction, and a statement that starts after the
/// freeze committed sees the fence.
struct InsertMerchantKey: PostgresPreparedStatement {
    static let name = "ordercell.InsertMerchantKey"
    static let sql = """
        INSERT INTO merchant_keys (\(PostgresSchema.merchantKeyColumns)) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
        WHERE NOT EXISTS (SELECT 1 FROM index_slot_fences WHERE slot = $10)
        ON CONFLICT (merchant_id, out_trade_no) DO NOTHING RETURNING 1
        """
    var entry: MerchantKeyEntry
    func makeBindings() throws -> PostgresBindings { merchantKeyBindings(entry) }
    func decodeRow(_ row: PostgresRow) throws -> Int { try row.decode(Int.self) }
}

/// Writes a changed entry, locked by the transaction, unless its slot is
/// frozen (then no row comes back). It takes the same bindings as
/// ``InsertMerchantKey`` (one binder for both); `created_at` ($8) never
/// changes, and a prepared statement must use every parameter it is given,
/// hence the `$8 IS NOT NULL` that is always true.
struct UpdateMerchantKey: PostgresPreparedStatement {
    static let name = "ordercell.UpdateMerchantKey"
    static let sql = """
        UPDATE merchant_keys SET owner_cell = $3, holder = $4, attempt = $5, abandoned = $6, revision = $7, updated_at = $9 \
        WHERE merchant_id = $1 AND out_trade_no = $2 AND $8::int8 IS NOT NULL \
        AND NOT EXISTS (SELECT 1 FROM index_slot_fences WHERE slot = $10) RETURNING 1
        """
    var entry: MerchantKeyEntry
    func makeBindings() throws -> PostgresBindings { merchantKeyBindings(entry) }
    func decodeRow(_ row: PostgresRow) throws -> Int { try row.decode(Int.self) }
}

/// Whether an index slot is frozen for a move.
struct SelectSlotFrozen: PostgresPreparedStatement {
    static let name = "ordercell.SelectSlotFrozen"
    static let sql = "SELECT 1 FROM index_slot_fences WHERE slot = $1"
    var slot: Int
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(Int32(slot))
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Int { try row.decode(Int.self) }
}

/// The slots frozen for a move.
struct SelectFrozenSlots: PostgresPreparedStatement {
    static let name = "ordercell.SelectFrozenSlots"
    static let sql = "SELECT slot FROM index_slot_fences"
    func makeBindings() throws -> PostgresBindings { PostgresBindings() }
    func decodeRow(_ row: PostgresRow) throws -> Int { Int(try row.decode(Int32.self)) }
}

/// Entries in key order after a key: a slot move's scan.
struct SelectMerchantKeysAfter: PostgresPreparedStatement {
    static let name = "ordercell.SelectMerchantKeysAfter"
    static let sql = """
        SELECT \(PostgresSchema.merchantKeyColumns) FROM merchant_keys WHERE (merchant_id, out_trade_no) > ($1, $2) \
        ORDER BY merchant_id, out_trade_no LIMIT $3
        """
    var after: MerchantKey?
    var limit: Int
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(after?.merchantID ?? "")
        bindings.append(after?.outTradeNo ?? "")
        bindings.append(Int64(limit))
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> MerchantKeyEntry { try decodeMerchantKeyEntry(row) }
}

private func merchantKeyBindings(_ entry: MerchantKeyEntry) -> PostgresBindings {
    let row = MerchantKeyRow(entry)
    var bindings = PostgresBindings(capacity: 10)
    bindings.append(entry.key.merchantID)
    bindings.append(entry.key.outTradeNo)
    bindings.append(row.owner)
    bindings.appendOptional(row.holder)
    bindings.append(row.attempt)
    bindings.append(row.abandoned)
    bindings.append(row.revision)
    bindings.append(row.createdAt)
    bindings.append(row.updatedAt)
    bindings.append(Int32(entry.key.indexSlot))
    return bindings
}

/// Reserves a batch of new keys in one statement, each for its candidate;
/// keys that have an entry already (also earlier in the batch) are skipped.
/// Returns the keys it reserved, with the attempt that reserved each.
struct InsertNewMerchantKeys: PostgresPreparedStatement {
    static let name = "ordercell.InsertNewMerchantKeys"
    static let sql = """
        INSERT INTO merchant_keys (\(PostgresSchema.merchantKeyColumns))
        SELECT merchant_id, out_trade_no, owner_cell, NULL, attempt, '', 1, $5, $5 \
        FROM unnest($1::text[], $2::text[], $3::int4[], $4::int8[], $6::int4[]) \
        WITH ORDINALITY AS b(merchant_id, out_trade_no, owner_cell, attempt, slot, position) \
        WHERE NOT EXISTS (SELECT 1 FROM index_slot_fences f WHERE f.slot = b.slot) \
        ORDER BY merchant_id COLLATE "C", out_trade_no COLLATE "C", position
        ON CONFLICT (merchant_id, out_trade_no) DO NOTHING
        RETURNING merchant_id, out_trade_no, attempt
        """
    var requests: [MerchantKeyBindRequest]
    var now: Timestamp
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 6)
        bindings.append(requests.map(\.key.merchantID))
        bindings.append(requests.map(\.key.outTradeNo))
        bindings.append(requests.map { Int32($0.candidate.rawValue) })
        bindings.append(requests.map { Int64(bitPattern: $0.attempt) })
        bindings.append(now.millisecondsSinceEpoch)
        bindings.append(requests.map { Int32($0.key.indexSlot) })
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> (merchantID: String, outTradeNo: String, attempt: Int64) {
        try row.decode((String, String, Int64).self)
    }
}

/// New keys of a batch of creates in the cell holding their slot, each
/// written already claimed by its create's order (the first of a key in
/// the batch); keys that have an entry, or whose slot is frozen, are
/// skipped. Returns the keys it wrote, with their holders.
struct InsertClaimedMerchantKeys: PostgresPreparedStatement {
    static let name = "ordercell.InsertClaimedMerchantKeys"
    static let sql = """
        INSERT INTO merchant_keys (\(PostgresSchema.merchantKeyColumns))
        SELECT merchant_id, out_trade_no, $3, holder, attempt, '', 1, $6, $6 \
        FROM unnest($1::text[], $2::text[], $4::text[], $5::int8[], $7::int4[]) \
        WITH ORDINALITY AS b(merchant_id, out_trade_no, holder, attempt, slot, position) \
        WHERE NOT EXISTS (SELECT 1 FROM index_slot_fences f WHERE f.slot = b.slot) \
        ORDER BY merchant_id COLLATE "C", out_trade_no COLLATE "C", position
        ON CONFLICT (merchant_id, out_trade_no) DO NOTHING
        RETURNING merchant_id, out_trade_no, holder
        """
    var creates: [BoundInsert]
    var cell: CellID
    var now: Timestamp
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 7)
        bindings.append(creates.map(\.order.merchantID))
        bindings.append(creates.map(\.order.outTradeNo))
        bindings.append(Int32(cell.rawValue))
        bindings.append(creates.map(\.order.id.description))
        bindings.append(creates.map { Int64(bitPattern: $0.attempt) })
        bindings.append(now.millisecondsSinceEpoch)
        bindings.append(creates.map { Int32($0.order.merchantKey.indexSlot) })
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> (key: MerchantKey, holder: String) {
        let (merchantID, outTradeNo, holder) = try row.decode((String, String, String).self)
        return (MerchantKey(merchantID: merchantID, outTradeNo: outTradeNo), holder)
    }
}

/// A batch of bound creates of new keys in one statement, and so in one
/// round trip and one commit: each new key is written claimed by its
/// create's order (the first of a key in the batch), and exactly the
/// orders whose keys were written are inserted, with their creation
/// events. Keys that have an entry, or whose slot is frozen, are skipped
/// and their creates are left to ``PostgresOrderStore``'s transaction,
/// which decides known keys. Returns the ids of the orders it inserted.
///
/// The orders' insert has no `ON CONFLICT`: an order of the key already in
/// the cell (made while its slot could not be reached) fails the whole
/// statement with a unique violation, so no key is ever left claimed by an
/// order that was not stored; the transaction then decides the batch. The
/// fence is read after the statement's lock on `merchant_keys` is taken,
/// as in that transaction. Bindings $1–$13 are ``InsertNewOrders``'s.
struct InsertBoundOrders: PostgresPreparedStatement {
    static let name = "ordercell.InsertBoundOrders"
    static let sql = """
        WITH batch AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::bool[], \
            $8::int8[], $9::int8[], $10::int8[], $13::text[], $14::int8[], $15::int4[]) WITH ORDINALITY \
            AS b(order_id, merchant_id, out_trade_no, amount, currency, description, has_description, created_at, expires_at, \
            revision, key_status, attempt, slot, position)
        ), claimed AS (
            INSERT INTO merchant_keys (\(PostgresSchema.merchantKeyColumns))
            SELECT merchant_id, out_trade_no, $16, order_id, attempt, '', 1, $17, $17 FROM batch \
            WHERE NOT EXISTS (SELECT 1 FROM index_slot_fences f WHERE f.slot = batch.slot) \
            ORDER BY merchant_id COLLATE "C", out_trade_no COLLATE "C", position
            ON CONFLICT (merchant_id, out_trade_no) DO NOTHING
            RETURNING holder
        ), inserted AS (
            INSERT INTO orders (\(PostgresSchema.orderColumns))
            SELECT order_id, merchant_id, out_trade_no, amount, currency, CASE WHEN has_description THEN description END, \
            $11, 0, NULL, NULL, created_at, expires_at, NULL, NULL, created_at, revision, key_status \
            FROM batch JOIN claimed ON claimed.holder = batch.order_id
            ORDER BY merchant_id COLLATE "C", out_trade_no COLLATE "C"
            RETURNING order_id, created_at, amount, out_trade_no
        )
        INSERT INTO order_events (order_id, sequence, kind, at, amount, reference, status_after)
        SELECT order_id, 1, $12, created_at, amount, out_trade_no, $11 FROM inserted
        RETURNING order_id
        """
    var creates: [BoundInsert]
    var cell: CellID
    var now: Timestamp

    func makeBindings() throws -> PostgresBindings {
        var bindings = try InsertNewOrders(orders: creates.map(\.order)).makeBindings()
        bindings.append(creates.map { Int64(bitPattern: $0.attempt) })
        bindings.append(creates.map { Int32($0.order.merchantKey.indexSlot) })
        bindings.append(Int32(cell.rawValue))
        bindings.append(now.millisecondsSinceEpoch)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> String { try row.decode(String.self) }
}

/// The entries of many keys at once.
struct SelectMerchantKeys: PostgresPreparedStatement {
    static let name = "ordercell.SelectMerchantKeys"
    static let sql = """
        SELECT \(PostgresSchema.merchantKeyColumns) FROM merchant_keys \
        WHERE (merchant_id, out_trade_no) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        """
    var keys: [MerchantKey]
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(keys.map(\.merchantID))
        bindings.append(keys.map(\.outTradeNo))
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> MerchantKeyEntry { try decodeMerchantKeyEntry(row) }
}

/// Entries copied from another cell, written as they are (a slot move's
/// copy). It takes the same array bindings as ``InsertMerchantKeys`` (one
/// binder for all three statements); the slots ($10) are not checked: the
/// new cell holds none of them yet.
struct ImportMerchantKeys: PostgresPreparedStatement {
    static let name = "ordercell.ImportMerchantKeys"
    static let sql = """
        INSERT INTO merchant_keys (\(PostgresSchema.merchantKeyColumns))
        SELECT merchant_id, out_trade_no, owner_cell, NULLIF(holder, ''), attempt, abandoned, revision, created_at, updated_at \
        FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::int8[], $6::text[], $7::int4[], $8::int8[], $9::int8[], $10::int4[]) \
        AS i(merchant_id, out_trade_no, owner_cell, holder, attempt, abandoned, revision, created_at, updated_at, slot) \
        ON CONFLICT (merchant_id, out_trade_no) DO UPDATE SET owner_cell = excluded.owner_cell, holder = excluded.holder, \
        attempt = excluded.attempt, abandoned = excluded.abandoned, revision = excluded.revision, \
        created_at = excluded.created_at, updated_at = excluded.updated_at
        """
    var entries: [MerchantKeyEntry]
    func makeBindings() throws -> PostgresBindings { merchantKeyArrayBindings(entries) }
    func decodeRow(_ row: PostgresRow) throws {}
}

/// Deletes the entries of keys whose slot is frozen (a moved slot's copy left behind); a row back per entry deleted.
struct DeleteFrozenMerchantKeys: PostgresPreparedStatement {
    static let name = "ordercell.DeleteFrozenMerchantKeys"
    static let sql = """
        DELETE FROM merchant_keys m USING unnest($1::text[], $2::text[], $3::int4[]) AS d(merchant_id, out_trade_no, slot) \
        WHERE m.merchant_id = d.merchant_id AND m.out_trade_no = d.out_trade_no \
        AND EXISTS (SELECT 1 FROM index_slot_fences f WHERE f.slot = d.slot) RETURNING 1
        """
    var keys: [MerchantKey]
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(keys.map(\.merchantID))
        bindings.append(keys.map(\.outTradeNo))
        bindings.append(keys.map { Int32($0.indexSlot) })
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> Int { try row.decode(Int.self) }
}

/// The entries of many keys, locked until the transaction ends, in key
/// order (the order a batch of binds inserts them in: no deadlock).
struct LockMerchantKeys: PostgresPreparedStatement {
    static let name = "ordercell.LockMerchantKeys"
    static let sql = """
        SELECT \(PostgresSchema.merchantKeyColumns) FROM merchant_keys \
        WHERE (merchant_id, out_trade_no) IN (SELECT * FROM unnest($1::text[], $2::text[])) \
        ORDER BY merchant_id COLLATE "C", out_trade_no COLLATE "C" FOR UPDATE
        """
    var keys: [MerchantKey]
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(keys.map(\.merchantID))
        bindings.append(keys.map(\.outTradeNo))
        return bindings
    }
    func decodeRow(_ row: PostgresRow) throws -> MerchantKeyEntry { try decodeMerchantKeyEntry(row) }
}

/// New entries of many keys, unless another transaction wrote one first or
/// the slot is frozen: returns the keys it wrote.
struct InsertMerchantKeys: PostgresPreparedStatement {
    static let name = "ordercell.InsertMerchantKeys"
    static let sql = """
        INSERT INTO merchant_keys (\(PostgresSchema.merchantKeyColumns))
        SELECT merchant_id, out_trade_no, owner_cell, NULLIF(holder, ''), attempt, abandoned, revision, created_at, updated_at \
        FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::int8[], $6::text[], $7::int4[], $8::int8[], $9::int8[], $10::int4[]) \
        AS i(merchant_id, out_trade_no, owner_cell, holder, attempt, abandoned, revision, created_at, updated_at, slot) \
        WHERE NOT EXISTS (SELECT 1 FROM index_slot_fences f WHERE f.slot = i.slot) \
        ORDER BY merchant_id COLLATE "C", out_trade_no COLLATE "C" \
        ON CONFLICT (merchant_id, out_trade_no) DO NOTHING RETURNING merchant_id, out_trade_no
        """
    var entries: [MerchantKeyEntry]
    func makeBindings() throws -> PostgresBindings { merchantKeyArrayBindings(entries) }
    func decodeRow(_ row: PostgresRow) throws -> MerchantKey {
        let (merchantID, outTradeNo) = try row.decode((String, String).self)
        return MerchantKey(merchantID: merchantID, outTradeNo: outTradeNo)
    }
}

/// Changed entries of many keys, locked by the transaction, unless the slot is frozen: a row back per entry written.
struct UpdateMerchantKeys: PostgresPreparedStatement {
    static let name = "ordercell.UpdateMerchantKeys"
    static let sql = """
        UPDATE merchant_keys m SET owner_cell = u.owner_cell, holder = NULLIF(u.holder, ''), attempt = u.attempt, \
        abandoned = u.abandoned, revision = u.revision, updated_at = u.updated_at \
        FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::int8[], $6::text[], $7::int4[], $8::int8[], $9::int8[], $10::int4[]) \
        AS u(merchant_id, out_trade_no, owner_cell, holder, attempt, abandoned, revision, created_at, updated_at, slot) \
        WHERE m.merchant_id = u.merchant_id AND m.out_trade_no = u.out_trade_no \
        AND NOT EXISTS (SELECT 1 FROM index_slot_fences f WHERE f.slot = u.slot) RETURNING 1
        """
    var entries: [MerchantKeyEntry]
    func makeBindings() throws -> PostgresBindings { merchantKeyArrayBindings(entries) }
    func decodeRow(_ row: PostgresRow) throws -> Int { try row.decode(Int.self) }
}

/// The columns of many entries as arrays (a missing holder as ''), and their slots.
private func merchantKeyArrayBindings(_ entries: [MerchantKeyEntry]) -> PostgresBindings {
    let rows = entries.map(MerchantKeyRow.init)
    var bindings = PostgresBindings(capacity: 10)
    bindings.append(entries.map(\.key.merchantID))
    bindings.append(entries.map(\.key.outTradeNo))
    bindings.append(rows.map { Int32($0.owner) })
    bindings.append(rows.map { $0.holder ?? "" })
    bindings.append(rows.map(\.attempt))
    bindings.append(rows.map(\.abandoned))
    bindings.append(rows.map { Int32($0.revision) })
    bindings.append(rows.map(\.createdAt))
    bindings.append(rows.map(\.updatedAt))
    bindings.append(entries.map { Int32($0.key.indexSlot) })
    return bindings
}
