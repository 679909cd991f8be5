import GRDB
import MerchantNotifications
import OrderModel

/// The embedded cell's outbox of merchant notifications, in its SQLite file.
extension SQLiteOrderStore: NotificationStore {
    static let notificationColumns = "event_id, merchant_id, order_id, kind, created_at, status, attempts, due_at, finished_at, last_failure"

    public func holdNotifierLease(_ holder: String, now: Timestamp, for duration: Duration) async throws -> Bool {
        let (at, until) = (now.millisecondsSinceEpoch, now.adding(milliseconds: duration.wholeMilliseconds).millisecondsSinceEpoch)
        return try await guarded {
            try await pool.write { db in
                try db.execute(
                    sql: """
                        UPDATE notifier_state SET lease_holder = ?, lease_expires_at = ?
                        WHERE id = 1 AND (lease_holder IS NULL OR lease_holder = ? OR lease_expires_at <= ?)
                        """,
                    arguments: [holder, until, holder, at]
                )
                return db.changesCount == 1
            }
        }
    }

    public func releaseNotifierLease(_ holder: String) async throws {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: "UPDATE notifier_state SET lease_holder = NULL, lease_expires_at = NULL WHERE id = 1 AND lease_holder = ?", arguments: [holder])
            }
        }
    }

    public func notificationCursor() async throws -> EventFeedPosition {
        try await guarded {
            try await pool.read { db in
                guard let row = try Row.fetchOne(db, sql: "SELECT cursor_transaction, cursor_event FROM notifier_state WHERE id = 1") else {
                    throw StoreError("the notifier's state row is missing")
                }
                return EventFeedPosition(transaction: UInt64(row[0] as Int64), event: row[1])
            }
        }
    }

    public func enqueueNotifications(_ notifications: [StoredNotification], advancingCursorTo cursor: EventFeedPosition) async throws {
        try await guarded {
            try await pool.write { db in
                let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO notifications (\(Self.notificationColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
                for notification in notifications {
                    let columns = NotificationColumns(notification.delivery.state)
                    try insert.execute(arguments: [
                        notification.eventID, notification.merchantID, notification.orderID.description, notification.kind.rawValue,
                        notification.createdAt.millisecondsSinceEpoch, columns.status.rawValue, columns.attempts, columns.dueAt, columns.finishedAt,
                        columns.lastFailure,
                    ])
                }
                try db.execute(
                    sql: """
                        UPDATE notifier_state SET cursor_transaction = ?, cursor_event = ?
                        WHERE id = 1 AND (cursor_transaction < ? OR (cursor_transaction = ? AND cursor_event < ?))
                        """,
                    arguments: [Int64(cursor.transaction), cursor.event, Int64(cursor.transaction), Int64(cursor.transaction), cursor.event]
                )
            }
        }
    }

    public func dueNotifications(at now: Timestamp, limit: Int, excludingMerchants: [String]) async throws -> [StoredNotification] {
        let excluded = excludingMerchants.isEmpty ? "" : " AND merchant_id NOT IN (\(Array(repeating: "?", count: excludingMerchants.count).joined(separator: ", ")))"
        var arguments: [(any DatabaseValueConvertible)?] = [now.millisecondsSinceEpoch]
        arguments += excludingMerchants.map { $0 as (any DatabaseValueConvertible)? }
        arguments.append(limit)
        return try await selectNotifications(
            "SELECT \(Self.notificationColumns) FROM notifications WHERE status = 'pending' AND due_at <= ?\(excluded) ORDER BY due_at, event_id LIMIT ?",
            StatementArguments(arguments)
        )
    }

    public func updateNotification(_ delivery: NotificationDelivery, from previous: NotificationDelivery.State) async throws -> Bool {
        try await updateNotifications([NotificationUpdate(delivery: delivery, previous: previous)])[0]
    }

    public func updateNotifications(_ updates: [NotificationUpdate]) async throws -> [Bool] {
        guard !updates.isEmpty else { return [] }
        return try await guarded {
            try await pool.write { db in
                let statement = try db.cachedStatement(
                    sql: """
                        UPDATE notifications SET status = ?, attempts = ?, due_at = ?, finished_at = ?, last_failure = ?
                        WHERE event_id = ? AND status = ? AND attempts = ? AND due_at IS ?
                        """
                )
                return try updates.map { update in
                    let (columns, expected) = (NotificationColumns(update.delivery.state), NotificationColumns(update.previous))
                    try statement.execute(arguments: [
                        columns.status.rawValue, columns.attempts, columns.dueAt, columns.finishedAt, columns.lastFailure, update.delivery.eventID,
                        expected.status.rawValue, expected.attempts, expected.dueAt,
                    ])
                    return db.changesCount == 1
                }
            }
        }
    }

    public func notifications(_ status: NotificationStatus, after: String?, limit: Int) async throws -> [StoredNotification] {
        try await selectNotifications(
            "SELECT \(Self.notificationColumns) FROM notifications WHERE status = ? AND event_id > ? ORDER BY event_id LIMIT ?",
            [status.rawValue, after ?? "", limit]
        )
    }

    public func notification(_ eventID: String) async throws -> StoredNotification? {
        try await selectNotifications("SELECT \(Self.notificationColumns) FROM notifications WHERE event_id = ?", [eventID]).first
    }

    public func purgeDeliveredNotifications(before cutoff: Timestamp, limit: Int) async throws -> Int {
        try await guarded {
            try await pool.write { db in
                try db.execute(
                    sql: """
                        DELETE FROM notifications WHERE event_id IN (
                            SELECT event_id FROM notifications WHERE status = 'delivered' AND finished_at < ? LIMIT ?)
                        """,
                    arguments: [cutoff.millisecondsSinceEpoch, limit]
                )
                return db.changesCount
            }
        }
    }

    public func notificationBacklog(at now: Timestamp) async throws -> NotificationBacklog {
        try await guarded {
            try await pool.read { db in
                guard
                    let state = try Row.fetchOne(
                        db, sql: "SELECT cursor_transaction, cursor_event, lease_holder, lease_expires_at FROM notifier_state WHERE id = 1"
                    ),
                    let counts = try Row.fetchOne(
                        db,
                        sql: """
                            SELECT
                              (SELECT count(*) FROM notifications WHERE status = 'pending'),
                              (SELECT count(*) FROM notifications WHERE status = 'pending' AND due_at <= ?),
                              (SELECT count(*) FROM notifications WHERE status = 'dead'),
                              (SELECT min(created_at) FROM notifications WHERE status = 'pending')
                            """,
                        arguments: [now.millisecondsSinceEpoch]
                    )
                else { throw StoreError("the notifier's state row is missing") }
                let oldest: Int64? = counts[3]
                let leaseExpiry: Int64? = state[3]
                return NotificationBacklog(
                    cursor: EventFeedPosition(transaction: UInt64(state[0] as Int64), event: state[1]), pending: counts[0], due: counts[1], dead: counts[2],
                    oldestPendingSince: oldest.map(Timestamp.init(millisecondsSinceEpoch:)), leaseHolder: state[2],
                    leaseExpiresAt: leaseExpiry.map(Timestamp.init(millisecondsSinceEpoch:))
                )
            }
        }
    }

    private func selectNotifications(_ sql: String, _ arguments: StatementArguments) async throws -> [StoredNotification] {
        try await guarded {
            try await pool.read { db in
                try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map { row in
                    guard let status = NotificationStatus(rawValue: row[5]) else { throw StoreError("notification \(row[0] as String) has an unknown status") }
                    return try NotificationColumns.notification(
                        eventID: row[0], merchantID: row[1], orderID: row[2], kind: row[3], createdAt: row[4],
                        columns: NotificationColumns(status: status, attempts: row[6], dueAt: row[7], finishedAt: row[8], lastFailure: row[9])
                    )
                }
            }
        }
    }
}
