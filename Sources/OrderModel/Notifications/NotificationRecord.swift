/// Where a merchant notification's delivery stands.
public enum NotificationStatus: String, Sendable, Codable, CaseIterable {
    case pending
    case delivered
    case dead
}

/// One notification as an operator sees it (never its body, which the
/// merchant's own order data fills).
/// (Each boundary has its own view of it: the cell protocol's message, the operator API's JSON.)
public struct NotificationRecord: Sendable, Equatable {
    public var eventID: String
    public var merchantID: String
    public var orderID: String
    public var kind: OrderEventKind
    public var status: NotificationStatus
    public var attempts: Int
    /// When the next attempt is due (pending).
    public var dueAt: Timestamp?
    /// When it was delivered, or died.
    public var finishedAt: Timestamp?
    public var lastFailure: String?
    /// When the notifier took its event from the feed.
    public var createdAt: Timestamp

    public init(
        eventID: String, merchantID: String, orderID: String, kind: OrderEventKind, status: NotificationStatus, attempts: Int, dueAt: Timestamp?,
        finishedAt: Timestamp?, lastFailure: String?, createdAt: Timestamp
    ) {
        self.eventID = eventID
        self.merchantID = merchantID
        self.orderID = orderID
        self.kind = kind
        self.status = status
        self.attempts = attempts
        self.dueAt = dueAt
        self.finishedAt = finishedAt
        self.lastFailure = lastFailure
        self.createdAt = createdAt
    }
}

/// What a cell's notifier has before it: for the operator view and the metrics.
public struct NotificationBacklog: Sendable, Equatable {
    /// Where the notifier's reading of the feed stands.
    public var cursor: EventFeedPosition
    public var pending: Int
    /// Pending and due now (attempts waiting for a free sender).
    public var due: Int
    public var dead: Int
    /// When the oldest pending notification was taken from the feed.
    public var oldestPendingSince: Timestamp?
    /// Who holds the cell's notifier lease, and until when.
    public var leaseHolder: String?
    public var leaseExpiresAt: Timestamp?

    public init(
        cursor: EventFeedPosition, pending: Int, due: Int, dead: Int, oldestPendingSince: Timestamp?, leaseHolder: String?, leaseExpiresAt: Timestamp?
    ) {
        self.cursor = cursor
        self.pending = pending
        self.due = due
        self.dead = dead
        self.oldestPendingSince = oldestPendingSince
        self.leaseHolder = leaseHolder
        self.leaseExpiresAt = leaseExpiresAt
    }
}

/// A cell's notifier as an operator asks for it: its backlog, how far its
/// reading of the feed lags, and a page of its notifications.
public struct NotifierStatusPage: Sendable, Equatable {
    public var backlog: NotificationBacklog
    /// How long the oldest event the notifier has not taken from the feed has waited (milliseconds;
    /// 0 when it has taken every event the feed offers).
    public var feedLagMilliseconds: Int64
    public var notifications: [NotificationRecord]

    public init(backlog: NotificationBacklog, feedLagMilliseconds: Int64, notifications: [NotificationRecord]) {
        self.backlog = backlog
        self.feedLagMilliseconds = feedLagMilliseconds
        self.notifications = notifications
    }
}
