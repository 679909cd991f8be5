import CellRouting
import OrderModel

/// `PUT /admin/merchants/{merchant_id}/notify`: where the merchant is notified.
public struct NotifyEndpointSetRequest: Codable, Sendable {
    public var url: String
    /// Allow a loopback or private-network target (refused otherwise).
    public var allowPrivateNetwork: Bool?
    /// Make a new signing secret even though the merchant has one.
    public var rotateSecret: Bool?
    public var reason: String?
    public var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey {
        case url, allowPrivateNetwork = "allow_private_network", rotateSecret = "rotate_secret", reason, expectedVersion = "expected_version"
    }

    public init(url: String, allowPrivateNetwork: Bool? = nil, rotateSecret: Bool? = nil, reason: String? = nil, expectedVersion: UInt64? = nil) {
        self.url = url
        self.allowPrivateNetwork = allowPrivateNetwork
        self.rotateSecret = rotateSecret
        self.reason = reason
        self.expectedVersion = expectedVersion
    }
}

/// A notify endpoint as operators see it: never its secret.
public struct NotifyEndpointView: Codable, Sendable, Equatable {
    public var merchantID: String
    public var url: String
    public var allowPrivateNetwork: Bool
    public var updatedAt: String
    enum CodingKeys: String, CodingKey { case merchantID = "merchant_id", url, allowPrivateNetwork = "allow_private_network", updatedAt = "updated_at" }

    public init(_ endpoint: NotifyEndpoint) {
        merchantID = endpoint.merchantID
        url = endpoint.url
        allowPrivateNetwork = endpoint.allowPrivateNetwork
        updatedAt = endpoint.updatedAt.rfc3339
    }
}

/// An endpoint set: the signing secret when one was made (shown this once), and the release.
public struct NotifyEndpointSetView: Codable, Sendable {
    public var endpoint: NotifyEndpointView
    /// The secret notifications are signed with; absent when the endpoint kept its secret.
    public var secret: String?
    public var version: UInt64
    public var author: String
}

/// `GET /admin/notify-endpoints`.
public struct NotifyEndpointListView: Codable, Sendable {
    public var notifyEndpoints: [NotifyEndpointView]
    enum CodingKeys: String, CodingKey { case notifyEndpoints = "notify_endpoints" }
}

/// `GET /admin/feed`: every cell's feed reader (the notifier) and its notifications backlog.
public struct FeedOverviewView: Codable, Sendable {
    public var asOf: String
    public var cells: [CellFeedView]
    enum CodingKeys: String, CodingKey { case asOf = "as_of", cells }

    public init(asOf: String, cells: [CellFeedView]) {
        self.asOf = asOf
        self.cells = cells
    }
}

/// One cell's notifier: where it stands in the feed and what waits; `error` when the cell did not answer.
public struct CellFeedView: Codable, Sendable {
    public var cellID: Int
    public var cursor: String?
    /// How long the oldest event not yet taken from the feed has waited, in seconds.
    public var feedLagSeconds: Double?
    public var pending: Int?
    public var due: Int?
    public var dead: Int?
    public var oldestPendingSince: String?
    public var leaseHolder: String?
    public var leaseExpiresAt: String?
    public var error: String?
    enum CodingKeys: String, CodingKey {
        case cellID = "cell_id", cursor, feedLagSeconds = "feed_lag_seconds", pending, due, dead, oldestPendingSince = "oldest_pending_since"
        case leaseHolder = "lease_holder", leaseExpiresAt = "lease_expires_at", error
    }

    public init(cell: CellID, page: NotifierStatusPage) {
        cellID = Int(cell.rawValue)
        cursor = page.backlog.cursor.description
        feedLagSeconds = Double(page.feedLagMilliseconds) / 1000
        pending = page.backlog.pending
        due = page.backlog.due
        dead = page.backlog.dead
        oldestPendingSince = page.backlog.oldestPendingSince?.rfc3339
        leaseHolder = page.backlog.leaseHolder
        leaseExpiresAt = page.backlog.leaseExpiresAt?.rfc3339
    }

    public init(cell: CellID, error: String) {
        cellID = Int(cell.rawValue)
        self.error = error
    }
}

/// One notification as operators see it: never its body; times in RFC 3339.
public struct NotificationRecordView: Codable, Sendable, Equatable {
    public var eventID: String
    public var merchantID: String
    public var orderID: String
    public var kind: String
    public var status: String
    public var attempts: Int
    public var dueAt: String?
    public var finishedAt: String?
    public var lastFailure: String?
    public var createdAt: String
    enum CodingKeys: String, CodingKey {
        case eventID = "event_id", merchantID = "merchant_id", orderID = "order_id", kind, status, attempts, dueAt = "due_at"
        case finishedAt = "finished_at", lastFailure = "last_failure", createdAt = "created_at"
    }

    public init(_ record: NotificationRecord) {
        eventID = record.eventID
        merchantID = record.merchantID
        orderID = record.orderID
        kind = record.kind.rawValue
        status = record.status.rawValue
        attempts = record.attempts
        dueAt = record.dueAt?.rfc3339
        finishedAt = record.finishedAt?.rfc3339
        lastFailure = record.lastFailure
        createdAt = record.createdAt.rfc3339
    }
}

/// `GET /admin/cells/{cell_id}/notifications`: a page of one cell's notifications.
public struct NotificationListView: Codable, Sendable {
    public var cellID: Int
    public var notifications: [NotificationRecordView]
    /// The `after` of the next page; absent on the last.
    public var nextAfter: String?
    enum CodingKeys: String, CodingKey { case cellID = "cell_id", notifications, nextAfter = "next_after" }
}

/// `POST /admin/cells/{cell_id}/notifications/redeliver`: which dead notifications to send again.
public struct RedeliverRequest: Codable, Sendable {
    /// Event ids; absent: every dead notification of the cell.
    public var eventIDs: [String]?
    public var reason: String?
    enum CodingKeys: String, CodingKey { case eventIDs = "event_ids", reason }

    public init(eventIDs: [String]? = nil, reason: String? = nil) {
        self.eventIDs = eventIDs
        self.reason = reason
    }
}

public struct RedeliverView: Codable, Sendable {
    public var cellID: Int
    public var redelivered: Int
    public var author: String
    enum CodingKeys: String, CodingKey { case cellID = "cell_id", redelivered, author }
}
