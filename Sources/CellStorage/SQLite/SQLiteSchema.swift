import GRDB

/// The SQLite schema of a cell and its statements.
enum SQLiteSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: orders, refunds, events, sequences") { db in
            try db.execute(
                sql: """
                    CREATE TABLE orders (
                        order_id TEXT PRIMARY KEY NOT NULL,
                        merchant_id TEXT NOT NULL,
                        out_trade_no TEXT NOT NULL,
                        amount INTEGER NOT NULL CHECK (amount > 0),
                        currency TEXT NOT NULL,
                        description TEXT,
                        status TEXT NOT NULL,
                        refunded_amount INTEGER NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
                        payment_id TEXT,
                        close_reason TEXT,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        paid_at INTEGER,
                        closed_at INTEGER,
                        updated_at INTEGER NOT NULL,
                        revision INTEGER NOT NULL,
                        UNIQUE (merchant_id, out_trade_no)
                    ) WITHOUT ROWID;
                    CREATE INDEX orders_unpaid_by_expiry ON orders (expires_at) WHERE status = 'CREATED';
                    CREATE TABLE refunds (
                        order_id TEXT NOT NULL REFERENCES orders (order_id),
                        refund_id TEXT NOT NULL,
                        amount INTEGER NOT NULL CHECK (amount > 0),
                        reason TEXT,
                        created_at INTEGER NOT NULL,
                        PRIMARY KEY (order_id, refund_id)
                    ) WITHOUT ROWID;
                    CREATE TABLE order_events (
                        event_id INTEGER PRIMARY KEY AUTOINCREMENT,
                        order_id TEXT NOT NULL REFERENCES orders (order_id),
                        sequence INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        at INTEGER NOT NULL,
                        amount INTEGER,
                        reference TEXT,
                        status_after TEXT NOT NULL,
                        UNIQUE (order_id, sequence)
                    );
                    CREATE TABLE sequences (
                        name TEXT PRIMARY KEY NOT NULL,
                        next_value INTEGER NOT NULL
                    );
                    """
            )
        }
        migrator.registerMigration("v2: merchant-key index, key status of orders") { db in
            // Orders made before the index are unindexed: the reconciler claims their keys.
            try db.execute(
                sql: """
                    ALTER TABLE orders ADD COLUMN key_status TEXT NOT NULL DEFAULT 'UNINDEXED';
                    CREATE INDEX orders_unverified ON orders (created_at) WHERE key_status IN ('RESERVED', 'UNINDEXED');
                    CREATE TABLE merchant_keys (
                        merchant_id TEXT NOT NULL,
                        out_trade_no TEXT NOT NULL,
                        owner_cell INTEGER NOT NULL,
                        holder TEXT,
                        attempt INTEGER NOT NULL,
                        abandoned TEXT NOT NULL DEFAULT '',
                        revision INTEGER NOT NULL,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL,
                        PRIMARY KEY (merchant_id, out_trade_no)
                    ) WITHOUT ROWID;
                    CREATE INDEX merchant_keys_moved ON merchant_keys (updated_at) WHERE abandoned <> '';
                    """
            )
        }
        migrator.registerMigration("v3: index slot fences") { db in
            // A slot listed here is frozen for a move: no entry of it is written (docs/merchant-keys.md).
            try db.execute(sql: "CREATE TABLE index_slot_fences (slot INTEGER PRIMARY KEY NOT NULL)")
        }
        migrator.registerMigration("v4: unverified orders listed from a position") { db in
            // The reconciler reads them by (created_at, order_id) from where its last page ended.
            try db.execute(
                sql: """
                    DROP INDEX orders_unverified;
                    CREATE INDEX orders_unverified ON orders (created_at, order_id) WHERE key_status IN ('RESERVED', 'UNINDEXED');
                    """
            )
        }
        migrator.registerMigration("v5: merchant notifications") { db in
            // The cell's outbox of merchant notifications, and where its notifier stands (docs/events.md).
            try db.execute(
                sql: """
                    CREATE TABLE notifications (
                        event_id TEXT PRIMARY KEY NOT NULL,
                        merchant_id TEXT NOT NULL,
                        order_id TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
                        attempts INTEGER NOT NULL,
                        due_at INTEGER,
                        finished_at INTEGER,
                        last_failure TEXT
                    ) WITHOUT ROWID;
                    CREATE INDEX notifications_due ON notifications (due_at) WHERE status = 'pending';
                    CREATE INDEX notifications_finished ON notifications (status, finished_at) WHERE status <> 'pending';
                    CREATE TABLE notifier_state (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        cursor_transaction INTEGER NOT NULL,
                        cursor_event INTEGER NOT NULL,
                        lease_holder TEXT,
                        lease_expires_at INTEGER
                    );
                    INSERT INTO notifier_state (id, cursor_transaction, cursor_event) VALUES (1, 0, 0);
                    """
            )
        }
        return migrator
    }

    static let orderColumns = """
        order_id, merchant_id, out_trade_no, amount, currency, description, status, refunded_amount, payment_id, \
        close_reason, created_at, expires_at, paid_at, closed_at, updated_at, revision, key_status
        """
    static let selectOrderByID = "SELECT \(orderColumns) FROM orders WHERE order_id = ?"
    static let selectOrderByTradeNo = "SELECT \(orderColumns) FROM orders WHERE merchant_id = ? AND out_trade_no = ?"
    static let insertOrder = "INSERT INTO orders (\(orderColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    static let updateOrder = """
        UPDATE orders SET status = ?, refunded_amount = ?, payment_id = ?, close_reason = ?, paid_at = ?, \
        closed_at = ?, updated_at = ?, revision = ?, key_status = ? WHERE order_id = ?
        """
    static let insertRefund = "INSERT INTO refunds (order_id, refund_id, amount, reason, created_at) VALUES (?, ?, ?, ?, ?)"
    static let selectRefund = "SELECT amount, reason, created_at FROM refunds WHERE order_id = ? AND refund_id = ?"
    static let selectRefunds = "SELECT refund_id, amount, reason, created_at FROM refunds WHERE order_id = ? ORDER BY created_at, refund_id"
    static let insertEvent = """
        INSERT INTO order_events (order_id, sequence, kind, at, amount, reference, status_after) VALUES (?, ?, ?, ?, ?, ?, ?)
        """
    static let selectEventFeed = """
        SELECT e.event_id, e.order_id, e.sequence, e.kind, e.at, e.amount, e.reference, e.status_after, o.merchant_id \
        FROM order_events e JOIN orders o ON o.order_id = e.order_id WHERE e.event_id > ? ORDER BY e.event_id LIMIT ?
        """
    static let selectEvents = "SELECT sequence, kind, at, amount, reference, status_after FROM order_events WHERE order_id = ? ORDER BY sequence"
    static let selectUnverified = """
        SELECT \(orderColumns) FROM orders WHERE key_status IN ('RESERVED', 'UNINDEXED') AND created_at < ? \
        AND (created_at, order_id) > (?, ?) ORDER BY created_at, order_id LIMIT ?
        """
    static let merchantKeyColumns = "merchant_id, out_trade_no, owner_cell, holder, attempt, abandoned, revision, created_at, updated_at"
    static let selectMerchantKey = "SELECT \(merchantKeyColumns) FROM merchant_keys WHERE merchant_id = ? AND out_trade_no = ?"
    static let upsertMerchantKey = """
        INSERT INTO merchant_keys (\(merchantKeyColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
        ON CONFLICT (merchant_id, out_trade_no) DO UPDATE SET owner_cell = excluded.owner_cell, holder = excluded.holder, \
        attempt = excluded.attempt, abandoned = excluded.abandoned, revision = excluded.revision, updated_at = excluded.updated_at
        """
    static let selectSlotFrozen = "SELECT 1 FROM index_slot_fences WHERE slot = ?"
    static let selectFrozenSlots = "SELECT slot FROM index_slot_fences"
    static let freezeSlot = "INSERT OR IGNORE INTO index_slot_fences (slot) VALUES (?)"
    static let thawSlot = "DELETE FROM index_slot_fences WHERE slot = ?"
    static let deleteMerchantKey = "DELETE FROM merchant_keys WHERE merchant_id = ? AND out_trade_no = ?"
    /// A copied entry, written as it is (its creation time too).
    static let importMerchantKey = """
        INSERT INTO merchant_keys (\(merchantKeyColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
        ON CONFLICT (merchant_id, out_trade_no) DO UPDATE SET owner_cell = excluded.owner_cell, holder = excluded.holder, \
        attempt = excluded.attempt, abandoned = excluded.abandoned, revision = excluded.revision, \
        created_at = excluded.created_at, updated_at = excluded.updated_at
        """
    static let selectMerchantKeysAfter = """
        SELECT \(merchantKeyColumns) FROM merchant_keys WHERE (merchant_id, out_trade_no) > (?, ?) \
        ORDER BY merchant_id, out_trade_no LIMIT ?
        """
    static let selectMovedMerchantKeys = """
        SELECT \(merchantKeyColumns) FROM merchant_keys WHERE abandoned <> '' AND updated_at < ? ORDER BY updated_at LIMIT ?
        """
    static let selectExpired = "SELECT order_id FROM orders WHERE status = 'CREATED' AND expires_at <= ? ORDER BY expires_at LIMIT ?"
}
