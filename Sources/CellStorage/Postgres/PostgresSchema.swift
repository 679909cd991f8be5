import Logging
import PostgresNIO

/// The PostgreSQL schema of a cell, applied by numbered migrations.
enum PostgresSchema {
    /// Migrations in order; each runs once, in its own transaction.
    static let migrations: [(version: Int, name: String, sql: [String])] = [
        (
            1, "orders, refunds, events, sequences",
            [
                """
                CREATE TABLE orders (
                    order_id TEXT PRIMARY KEY,
                    merchant_id TEXT NOT NULL,
                    out_trade_no TEXT NOT NULL,
                    amount BIGINT NOT NULL CHECK (amount > 0),
                    currency TEXT NOT NULL,
                    description TEXT,
                    status TEXT NOT NULL,
                    refunded_amount BIGINT NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
                    payment_id TEXT,
                    close_reason TEXT,
                    created_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    paid_at BIGINT,
                    closed_at BIGINT,
                    updated_at BIGINT NOT NULL,
                    revision INTEGER NOT NULL,
                    UNIQUE (merchant_id, out_trade_no)
                )
                """,
                "CREATE INDEX orders_unpaid_by_expiry ON orders (expires_at) WHERE status = 'CREATED'",
                """
                CREATE TABLE refunds (
                    order_id TEXT NOT NULL REFERENCES orders (order_id),
                    refund_id TEXT NOT NULL,
                    amount BIGINT NOT NULL CHECK (amount > 0),
                    reason TEXT,
                    created_at BIGINT NOT NULL,
                    PRIMARY KEY (order_id, refund_id)
                )
                """,
                """
                CREATE TABLE order_events (
                    event_id BIGSERIAL PRIMARY KEY,
                    order_id TEXT NOT NULL REFERENCES orders (order_id),
                    sequence INTEGER NOT NULL,
                    kind TEXT NOT NULL,
                    at BIGINT NOT NULL,
                    amount BIGINT,
                    reference TEXT,
                    status_after TEXT NOT NULL,
                    UNIQUE (order_id, sequence)
                )
                """,
                "CREATE TABLE sequences (name TEXT PRIMARY KEY, next_value BIGINT NOT NULL)",
            ]
        ),
        (
            2, "merchant-key index, key status of orders",
            [
                // Orders made before the index are unindexed: the reconciler claims their keys.
                "ALTER TABLE orders ADD COLUMN key_status TEXT NOT NULL DEFAULT 'UNINDEXED'",
                "CREATE INDEX orders_unverified ON orders (created_at) WHERE key_status IN ('RESERVED', 'UNINDEXED')",
                """
                CREATE TABLE merchant_keys (
                    merchant_id TEXT NOT NULL,
                    out_trade_no TEXT NOT NULL,
                    owner_cell INTEGER NOT NULL,
                    holder TEXT,
                    attempt BIGINT NOT NULL,
                    abandoned TEXT NOT NULL DEFAULT '',
                    revision INTEGER NOT NULL,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    PRIMARY KEY (merchant_id, out_trade_no)
                )
                """,
                "CREATE INDEX merchant_keys_moved ON merchant_keys (updated_at) WHERE abandoned <> ''",
            ]
        ),
        (
            3, "index slot fences",
            // A slot listed here is frozen for a move: no entry of it is written (docs/merchant-keys.md).
            ["CREATE TABLE index_slot_fences (slot INTEGER PRIMARY KEY)"]
        ),
        (
            4, "unverified orders listed from a position",
            // The reconciler reads them by (created_at, order_id) from where its last page ended.
            [
                "DROP INDEX orders_unverified",
                "CREATE INDEX orders_unverified ON orders (created_at, order_id) WHERE key_status IN ('RESERVED', 'UNINDEXED')",
            ]
        ),
        (
            5, "the event feed's commit order",
            // Each event records its transaction: the feed reads in (transaction, event) order and stops short of
            // the oldest transaction still running, so a reader never passes an event committed after it read.
            // Events from before this migration all get the migration's own transaction: they come first.
            [
                "ALTER TABLE order_events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()",
                "CREATE INDEX order_events_feed ON order_events (txid, event_id)",
            ]
        ),
        (
            6, "merchant notifications",
            // The cell's outbox of merchant notifications, and where its notifier stands (docs/events.md). Kept
            // beside the orders: replicated with them, a failover loses none the notifier took from the feed.
            [
                """
                CREATE TABLE notifications (
                    event_id TEXT PRIMARY KEY,
                    merchant_id TEXT NOT NULL,
                    order_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
                    attempts INTEGER NOT NULL,
                    due_at BIGINT,
                    finished_at BIGINT,
                    last_failure TEXT
                )
                """,
                "CREATE INDEX notifications_due ON notifications (due_at) WHERE status = 'pending'",
                "CREATE INDEX notifications_finished ON notifications (status, finished_at) WHERE status <> 'pending'",
                """
                CREATE TABLE notifier_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    cursor_txid xid8 NOT NULL,
                    cursor_event BIGINT NOT NULL,
                    lease_holder TEXT,
                    lease_expires_at BIGINT
                )
                """,
                "INSERT INTO notifier_state (id, cursor_txid, cursor_event) VALUES (1, '0'::xid8, 0)",
            ]
        ),
    ]

    static func migrate(_ client: PostgresClient, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { connection in
            // One migrator at a time, whichever cell service starts first.
            try await connection.query("SELECT pg_advisory_xact_lock(4242001)", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                logger: logger
            )
            var applied: Set<Int> = []
            for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
                applied.insert(version)
            }
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.sql {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))", logger: logger
                )
            }
        }
    }

    static let orderColumns = """
        order_id, merchant_id, out_trade_no, amount, currency, description, status, refunded_amount, payment_id, \
        close_reason, created_at, expires_at, paid_at, closed_at, updated_at, revision, key_status
        """

    static let merchantKeyColumns = "merchant_id, out_trade_no, owner_cell, holder, attempt, abandoned, revision, created_at, updated_at"
}
