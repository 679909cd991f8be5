/// Where a reader of a cell's event feed stands: after the events of
/// transactions up to `transaction`, and within that transaction up to
/// event `event`.
///
/// A cell's `order_events` table is its outbox: every order change
/// appends its event in the change's own transaction. Readers outside the
/// cell (notifications, the reporting copy) follow it by position, and a
/// position only moves forward past events that can no longer be joined
/// by an earlier one — on PostgreSQL, where transactions commit in another
/// order than they take event ids, the feed stops short of the oldest
/// transaction still running (docs/events.md). A reader that saves its
/// position after handling the events before it resumes there after any
/// crash: each event at least once, in the order the feed gave it.
public struct EventFeedPosition: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// The commit-ordering key: PostgreSQL's transaction id (xid8), or the
    /// event id where one writer commits in id order (SQLite).
    public var transaction: UInt64
    public var event: Int64

    public init(transaction: UInt64, event: Int64) {
        self.transaction = transaction
        self.event = event
    }

    /// Before every event.
    public static let start = EventFeedPosition(transaction: 0, event: 0)

    public static func < (lhs: EventFeedPosition, rhs: EventFeedPosition) -> Bool {
        (lhs.transaction, lhs.event) < (rhs.transaction, rhs.event)
    }

    /// `transaction.event`: what a reader stores and shows.
    public var description: String { "\(transaction).\(event)" }

    /// Parses ``description``'s form.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let transaction = UInt64(parts[0]), let event = Int64(parts[1]), event >= 0 else { return nil }
        self.init(transaction: transaction, event: event)
    }
}

/// One event of a cell's feed, with the position just past it and the
/// merchant of its order (a reader routes and filters by it).
public struct FeedEvent: Sendable, Equatable {
    public var position: EventFeedPosition
    public var merchantID: String
    public var event: OrderEvent

    public init(position: EventFeedPosition, merchantID: String, event: OrderEvent) {
        self.position = position
        self.merchantID = merchantID
        self.event = event
    }

    /// The event's id, the same on every read of it: what a consumer
    /// deduplicates by (`<order id>-<sequence>`; an order's events never change).
    public var id: String { "\(event.orderID)-\(event.sequence)" }
}
