import MerchantNotifications
import OrderModel
import PostgresNIO

/// A PostgreSQL cell's outbox of merchant notifications, on its primary:
/// committed with synchronous replication like the orders, so a failover
/// keeps every notification and the cursor the notifier stored.
extension PostgresOrderStore: NotificationStore {
    public func holdNotifierLease(_ holder: String, now: Timestamp, for duration: Duration) async throws -> Bool {
        let (primary, logger) = (self.primary, self.logger)
        let (at, until) = (now.millisecondsSinceEpoch, now.adding(milliseconds: duration.wholeMilliseconds).millisecondsSinceEpoch)
        return try await deadline {
            let rows = try await primary.query(
                """
                UPDATE notifier_state SET lease_holder = \(holder), lease_expires_at = \(until)
                WHERE id = 1 AND (lease_holder IS NULL OR lease_holder = \(holder) OR lease_expires_at <= \(at))
                RETURNING 1
                """,
                logger: logger
            )
            var held = false
            for try await _ in rows.decode(Int.self) { held = true }
            return held
        }
    }

    public func releaseNotifierLease(_ holder: String) async throws {
        let (primary, logger) = (self.primary, self.logger)
        try await deadline {
            try await primary.query(
                "UPDATE notifier_state SET lease_holder = NULL, lease_expires_at = NULL WHERE id = 1 AND lease_holder = \(holder)", logger: logger
            )
        }
    }

    public func notificationCursor() async throws -> EventFeedPosition {
        let (primary, logger) = (self.primary, self.logger)
        return try await deadline {
            let rows = try await primary.query("SELECT cursor_txid::text, cursor_event FROM notifier_state WHERE id = 1", logger: logger)
            for try await (transaction, event) in rows.decode((String, Int64).self) {
                guard let transaction = UInt64(transaction) else { throw StoreError("the notifier's cursor \(transaction) is not a transaction id") }
                return EventFeedPosition(transaction: transaction, event: event)
            }
            throw StoreError("the notifier's state row is missing")
        }
    }

    public func enqueueNotifications(_ notifications: [StoredNotification], advancingCursorTo cursor: EventFeedPosition) async throws {
        let (primary, logger) = (self.primary, self.logger)
        let transaction = String(cursor.transaction)
        try await deadline {
            try await primary.withTransaction(logger: logger) { connection in
                for notification in notifications {
                    let columns = NotificationColumns(notification.delivery.state)
                    try await connection.query(
                        """
                        INSERT INTO notifications (event_id, merchant_id, order_id, kind, created_at, status, attempts, due_at, finished_at, last_failure)
                        VALUES (\(notification.eventID), \(notification.merchantID), \(notification.orderID.description), \(notification.kind.rawValue),
                                \(notification.createdAt.millisecondsSinceEpoch), \(columns.status.rawValue), \(columns.attempts),
                                \(columns.dueAt), \(columns.finishedAt), \(columns.lastFailure))
                        ON CONFLICT (event_id) DO NOTHING
                        """,
                        logger: logger
                    )
                }
                try await connection.query(
                    """
                    UPDATE notifier_state SET cursor_txid = \(transaction)::xid8, cursor_event = \(cursor.event)
                    WHERE id = 1 AND (cursor_txid, cursor_event) < (\(transaction)::xid8, \(cursor.event))
                    """,
                    logger: logger
                )
            }
        }
    }

    public func dueNotifications(at now: Timestamp, limit: Int, excludingMerchants: [String]) async throws -> [StoredNotification] {
        try await selectNotifications(
            """
            WHERE status = 'pending' AND due_at <= \(now.millisecondsSinceEpoch) AND merchant_id <> ALL(\(excludingMerchants)::text[])
            ORDER BY due_at, event_id LIMIT \(limit)
            """
        )
    }

    public func updateNotification(_ delivery: NotificationDelivery, from previous: NotificationDelivery.State) async throws -> Bool {
        try await updateNotifications([NotificationUpdate(delivery: delivery, previous: previous)])[0]
    }

    public func updateNotifications(_ updates: [NotificationUpdate]) async throws -> [Bool] {
        guard !updates.isEmpty else { return [] }
        let (primary, logger) = (self.primary, self.logger)
        return try await deadline {
            try await primary.withTransaction(logger: logger) { connection in
                var stored: [Bool] = []
                for update in updates {
                    let (columns, expected) = (NotificationColumns(update.delivery.state), NotificationColumns(update.previous))
                    let rows = try await connection.query(
                        """
                        UPDATE notifications SET status = \(columns.status.rawValue), attempts = \(columns.attempts), due_at = \(columns.dueAt),
                               finished_at = \(columns.finishedAt), last_failure = \(columns.lastFailure)
                        WHERE event_id = \(update.delivery.eventID) AND status = \(expected.status.rawValue) AND attempts = \(expected.attempts)
                          AND due_at IS NOT DISTINCT FROM \(expected.dueAt)
                        RETURNING 1
                        """,
                        logger: logger
                    )
                    var updated = false
                    for try await _ in rows.decode(Int.self) { updated = true }
                    stored.append(updated)
                }
                return stored
            }
        }
    }

    public func notifications(_ status: NotificationStatus, after: String?, limit: Int) async throws -> [StoredNotification] {
        try await selectNotifications("WHERE status = \(status.rawValue) AND event_id > \(after ?? "") ORDER BY event_id LIMIT \(limit)")
    }

    public func notification(_ eventID: String) async throws -> StoredNotification? {
        try await selectNotifications("WHERE event_id = \(eventID)").first
    }

    public func purgeDeliveredNotifications(before cutoff: Timestamp, limit: Int) async throws -> Int {
        let (primary, logger) = (self.primary, self.logger)
        return try await deadline {
            let rows = try await primary.query(
                """
                DELETE FROM notifications WHERE event_id IN (
                    SELECT event_id FROM notifications WHERE status = 'delivered' AND finished_at < \(cutoff.millisecondsSinceEpoch) LIMIT \(limit))
                RETURNING 1
                """,
                logger: logger
            )
            var deleted = 0
            for try await _ in rows.decode(Int.self) { deleted += 1 }
            return deleted
        }
    }

    public func notificationBacklog(at now: Timestamp) async throws -> NotificationBacklog {
        let (primary, logger) = (self.primary, self.logger)
        return try await deadline {
            let rows = try await primary.query(
                """
                SELECT s.cursor_txid::text, s.cursor_event, s.lease_holder, s.lease_expires_at,
                       (SELECT count(*) FROM notifications WHERE status = 'pending'),
                       (SELECT count(*) FROM notifications WHERE status = 'pending' AND due_at <= \(now.millisecondsSinceEpoch)),
                       (SELECT count(*) FROM notifications WHERE status = 'dead'),
                       (SELECT min(created_at) FROM notifications WHERE status = 'pending')
                FROM notifier_state s WHERE s.id = 1
                """,
                logger: logger
            )
            for try await (transaction, event, holder, expiry, pending, due, dead, oldest) in rows.decode(
                (String, Int64, String?, Int64?, Int64, Int64, Int64, Int64?).self
            ) {
                guard let transaction = UInt64(transaction) else { throw StoreError("the notifier's cursor \(transaction) is not a transaction id") }
                return NotificationBacklog(
                    cursor: EventFeedPosition(transaction: transaction, event: event), pending: Int(pending), due: Int(due), dead: Int(dead),
                    oldestPendingSince: oldest.map(Timestamp.init(millisecondsSinceEpoch:)), leaseHolder: holder,
                    leaseExpiresAt: expiry.map(Timestamp.init(millisecondsSinceEpoch:))
                )
            }
            throw StoreError("the notifier's state row is missing")
        }
    }

    private func selectNotifications(_ condition: PostgresQuery) async throws -> [StoredNotification] {
        let (primary, logger) = (self.primary, self.logger)
        var query = PostgresQuery(
            unsafeSQL: "SELECT event_id, merchant_id, order_id, kind, created_at, status, attempts, due_at, finished_at, last_failure FROM notifications "
        )
        query.sql += condition.sql
        query.binds = condition.binds
        let statement = query
        return try await deadline {
            var found: [StoredNotification] = []
            let rows = try await primary.query(statement, logger: logger)
            for try await (eventID, merchantID, orderID, kind, createdAt, statusText, attempts, dueAt, finishedAt, lastFailure) in rows.decode(
                (String, String, String, String, Int64, String, Int, Int64?, Int64?, String?).self
            ) {
                guard let status = NotificationStatus(rawValue: statusText) else { throw StoreError("notification \(eventID) has an unknown status") }
                found.append(
                    try NotificationColumns.notification(
                        eventID: eventID, merchantID: merchantID, orderID: orderID, kind: kind, createdAt: createdAt,
                        columns: NotificationColumns(status: status, attempts: attempts, dueAt: dueAt, finishedAt: finishedAt, lastFailure: lastFailure)
                    )
                )
            }
            return found
        }
    }
}
