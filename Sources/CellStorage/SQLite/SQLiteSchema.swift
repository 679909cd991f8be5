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
        return migrator
    }

    static let orderColumns = """
        order_id, merchant_id, out_trade_no, amount, currency, description, status, refunded_amount, payment_id, \
        close_reason, created_at, expires_at, paid_at, closed_at, updated_at, revision
        """
    static let selectOrderByID = "SELECT \(orderColumns) FROM orders WHERE order_id = ?"
    static let selectOrderByTradeNo = "SELECT \(orderColumns) FROM orders WHERE merchant_id = ? AND out_trade_no = ?"
    static let insertOrder = "INSERT INTO orders (\(orderColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    static let updateOrder = """
        UPDATE orders SET status = ?, refunded_amount = ?, payment_id = ?, close_reason = ?, paid_at = ?, \
        closed_at = ?, updated_at = ?, revision = ? WHERE order_id = ?
        """
    static let insertRefund = "INSERT INTO refunds (order_id, refund_id, amount, reason, created_at) VALUES (?, ?, ?, ?, ?)"
    static let selectRefund = "SELECT amount, reason, created_at FROM refunds WHERE order_id = ? AND refund_id = ?"
    static let selectRefunds = "SELECT refund_id, amount, reason, created_at FROM refunds WHERE order_id = ? ORDER BY created_at, refund_id"
    static let insertEvent = """
        INSERT INTO order_events (order_id, sequence, kind, at, amount, reference, status_after) VALUES (?, ?, ?, ?, ?, ?, ?)
        """
    static let selectEvents = "SELECT sequence, kind, at, amount, reference, status_after FROM order_events WHERE order_id = ? ORDER BY sequence"
    static let selectExpired = "SELECT order_id FROM orders WHERE status = 'CREATED' AND expires_at <= ? ORDER BY expires_at LIMIT ?"
}
