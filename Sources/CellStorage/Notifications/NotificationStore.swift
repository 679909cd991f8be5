import MerchantNotifications
import OrderModel

/// One merchant notification in its cell's outbox: what it tells (the
/// event, and the body signed and sent on every attempt) and how far its
/// delivery has come.
///
/// The body is written once, when the notifier takes the event from the
/// feed: every attempt, and every duplicate after a crash, sends the same
/// bytes under the same event id.
public struct StoredNotification: Sendable, Equatable {
    public var merchantID: String
    public var orderID: OrderID
    public var kind: OrderEventKind
    public var createdAt: Timestamp
    public var delivery: NotificationDelivery

    public init(merchantID: String, orderID: OrderID, kind: OrderEventKind, createdAt: Timestamp, delivery: NotificationDelivery) {
        self.merchantID = merchantID
        self.orderID = orderID
        self.kind = kind
        self.createdAt = createdAt
        self.delivery = delivery
    }

    public var eventID: String { delivery.eventID }

    /// The event's sequence in its order (the event id's last part).
    public var sequence: Int? { eventID.split(separator: "-").last.flatMap { Int($0) } }

    /// As an operator sees it: everything but the body.
    public var record: NotificationRecord {
        let columns = NotificationColumns(delivery.state)
        return NotificationRecord(
            eventID: eventID, merchantID: merchantID, orderID: orderID.description, kind: kind, status: columns.status, attempts: columns.attempts,
            dueAt: columns.dueAt.map(Timestamp.init(millisecondsSinceEpoch:)), finishedAt: columns.finishedAt.map(Timestamp.init(millisecondsSinceEpoch:)),
            lastFailure: columns.lastFailure, createdAt: createdAt
        )
    }
}

extension NotificationDelivery.State {
    public var status: NotificationStatus {
        switch self {
        case .pending: return .pending
        case .delivered: return .delivered
        case .dead: return .dead
        }
    }
}

/// A cell's outbox of merchant notifications, kept in the cell's own
/// storage beside its orders: on PostgreSQL it is replicated synchronously
/// with them, so a failover loses no notification the notifier had taken
/// from the feed, and whatever it had not taken is still in the feed past
/// its stored cursor.
///
/// Every implementation passes the same suite (`NotificationStoreSuite`).
public protocol NotificationStore: Sendable {
    /// Takes the cell's notifier lease for `holder` until `now + duration`,
    /// or renews it; false when another holder's lease has not expired.
    /// One notifier works per cell at a time; two for a moment (a paused
    /// holder whose lease ran out) only send some notifications twice,
    /// which merchants deduplicate by event id.
    func holdNotifierLease(_ holder: String, now: Timestamp, for duration: Duration) async throws -> Bool

    /// Gives the lease up (a graceful stop): another notifier takes over at once.
    func releaseNotifierLease(_ holder: String) async throws

    /// The feed position the notifier has taken every event before.
    func notificationCursor() async throws -> EventFeedPosition

    /// Adds `notifications` (those already there, by event id, are left as
    /// they are) and moves the cursor to `cursor`, never back, in one transaction.
    func enqueueNotifications(_ notifications: [StoredNotification], advancingCursorTo cursor: EventFeedPosition) async throws

    /// Pending notifications due at `now`, the longest due first, but none of `excludingMerchants`
    /// (those with as many attempts under way as they may have: the page goes to the others).
    func dueNotifications(at now: Timestamp, limit: Int, excludingMerchants: [String]) async throws -> [StoredNotification]

    /// Stores `delivery` if the stored one is still as `previous` left it (its status, attempts and due time); false
    /// when it was not: another notifier recorded an attempt first, or an operator redelivered it. A stale
    /// step never overwrites a newer one.
    @discardableResult
    func updateNotification(_ delivery: NotificationDelivery, from previous: NotificationDelivery.State) async throws -> Bool

    /// Stores each update whose notification is still as its `previous` left it (as
    /// ``updateNotification(_:from:)``), all in one transaction: a notifier records a round's outcomes
    /// with one commit. Whether each was stored, in order.
    func updateNotifications(_ updates: [NotificationUpdate]) async throws -> [Bool]

    /// Notifications in `status`, by event id after `after`, for operators.
    func notifications(_ status: NotificationStatus, after: String?, limit: Int) async throws -> [StoredNotification]

    /// One notification by its event id.
    func notification(_ eventID: String) async throws -> StoredNotification?

    /// Deletes up to `limit` delivered notifications delivered before `cutoff`; how many.
    func purgeDeliveredNotifications(before cutoff: Timestamp, limit: Int) async throws -> Int

    func notificationBacklog(at now: Timestamp) async throws -> NotificationBacklog
}

extension NotificationStore {
    public func dueNotifications(at now: Timestamp, limit: Int) async throws -> [StoredNotification] {
        try await dueNotifications(at: now, limit: limit, excludingMerchants: [])
    }

    /// Makes dead notifications pending again, due at `now` with their
    /// schedule anew (all of them when `eventIDs` is nil); how many.
    public func redeliverDeadNotifications(_ eventIDs: [String]?, now: Timestamp) async throws -> Int {
        var redelivered = 0
        if let eventIDs {
            for id in eventIDs {
                guard var notification = try await notification(id) else { continue }
                let previous = notification.delivery.state
                if notification.delivery.redeliver(at: now), try await updateNotification(notification.delivery, from: previous) { redelivered += 1 }
            }
            return redelivered
        }
        var after: String?
        while true {
            let page = try await notifications(.dead, after: after, limit: 500)
            for var notification in page {
                let previous = notification.delivery.state
                if notification.delivery.redeliver(at: now), try await updateNotification(notification.delivery, from: previous) { redelivered += 1 }
            }
            guard page.count == 500, let last = page.last else { return redelivered }
            after = last.eventID
        }
    }
}

/// One attempt's outcome to store: the delivery after it, and the state it started from.
public struct NotificationUpdate: Sendable, Equatable {
    public var delivery: NotificationDelivery
    public var previous: NotificationDelivery.State

    public init(delivery: NotificationDelivery, previous: NotificationDelivery.State) {
        self.delivery = delivery
        self.previous = previous
    }
}

/// A delivery's state as a stored row's columns, and back.
struct NotificationColumns: Sendable {
    var status: NotificationStatus
    var attempts: Int
    var dueAt: Int64?
    var finishedAt: Int64?
    var lastFailure: String?

    init(_ state: NotificationDelivery.State) {
        switch state {
        case .pending(let attempts, let due, let lastFailure):
            self = NotificationColumns(status: .pending, attempts: attempts, dueAt: due.millisecondsSinceEpoch, finishedAt: nil, lastFailure: lastFailure)
        case .delivered(let attempts, let at):
            self = NotificationColumns(status: .delivered, attempts: attempts, dueAt: nil, finishedAt: at.millisecondsSinceEpoch, lastFailure: nil)
        case .dead(let attempts, let at, let lastFailure):
            self = NotificationColumns(status: .dead, attempts: attempts, dueAt: nil, finishedAt: at.millisecondsSinceEpoch, lastFailure: lastFailure)
        }
    }

    init(status: NotificationStatus, attempts: Int, dueAt: Int64?, finishedAt: Int64?, lastFailure: String?) {
        self.status = status
        self.attempts = attempts
        self.dueAt = dueAt
        self.finishedAt = finishedAt
        self.lastFailure = lastFailure
    }

    func state(of eventID: String) throws -> NotificationDelivery.State {
        switch status {
        case .pending:
            guard let dueAt else { throw StoreError("pending notification \(eventID) has no due time") }
            return .pending(attempts: attempts, due: Timestamp(millisecondsSinceEpoch: dueAt), lastFailure: lastFailure)
        case .delivered:
            guard let finishedAt else { throw StoreError("delivered notification \(eventID) has no delivery time") }
            return .delivered(attempts: attempts, at: Timestamp(millisecondsSinceEpoch: finishedAt))
        case .dead:
            guard let finishedAt else { throw StoreError("dead notification \(eventID) has no time of death") }
            return .dead(attempts: attempts, at: Timestamp(millisecondsSinceEpoch: finishedAt), lastFailure: lastFailure ?? "")
        }
    }

    static func notification(
        eventID: String, merchantID: String, orderID: String, kind: String, createdAt: Int64, columns: NotificationColumns
    ) throws -> StoredNotification {
        guard let kind = OrderEventKind(rawValue: kind) else { throw StoreError("notification \(eventID) has an unknown kind \(kind)") }
        return StoredNotification(
            merchantID: merchantID, orderID: try OrderID(parsing: orderID), kind: kind,
            createdAt: Timestamp(millisecondsSinceEpoch: createdAt),
            delivery: NotificationDelivery(eventID: eventID, state: try columns.state(of: eventID))
        )
    }
}
