import OrderModel
import MerchantNotifications

/// The outbox follows the cell's storage like the orders do: after a
/// failover the notifier reads and writes it on the new primary.
extension FollowingPostgresStore: NotificationStore {
    public func holdNotifierLease(_ holder: String, now: Timestamp, for duration: Duration) async throws -> Bool {
        try await store.holdNotifierLease(holder, now: now, for: duration)
    }
    public func releaseNotifierLease(_ holder: String) async throws { try await store.releaseNotifierLease(holder) }
    public func notificationCursor() async throws -> EventFeedPosition { try await store.notificationCursor() }
    public func enqueueNotifications(_ notifications: [StoredNotification], advancingCursorTo cursor: EventFeedPosition) async throws {
        try await store.enqueueNotifications(notifications, advancingCursorTo: cursor)
    }
    public func dueNotifications(at now: Timestamp, limit: Int, excludingMerchants: [String]) async throws -> [StoredNotification] {
        try await store.dueNotifications(at: now, limit: limit, excludingMerchants: excludingMerchants)
    }
    public func updateNotification(_ delivery: NotificationDelivery, from previous: NotificationDelivery.State) async throws -> Bool {
        try await store.updateNotification(delivery, from: previous)
    }
    public func updateNotifications(_ updates: [NotificationUpdate]) async throws -> [Bool] { try await store.updateNotifications(updates) }
    public func notifications(_ status: NotificationStatus, after: String?, limit: Int) async throws -> [StoredNotification] {
        try await store.notifications(status, after: after, limit: limit)
    }
    public func notification(_ eventID: String) async throws -> StoredNotification? { try await store.notification(eventID) }
    public func purgeDeliveredNotifications(before cutoff: Timestamp, limit: Int) async throws -> Int {
        try await store.purgeDeliveredNotifications(before: cutoff, limit: limit)
    }
    public func notificationBacklog(at now: Timestamp) async throws -> NotificationBacklog { try await store.notificationBacklog(at: now) }
}
