import OrderModel

/// One notification's delivery to its merchant: a state machine as a value
/// type, its time passed in, persisted by the notifier after every step so
/// that a crash anywhere loses nothing (at least once: a notification sent
/// and acknowledged but not yet recorded is sent again, with the same event
/// id, which the merchant deduplicates by).
///
/// ```
/// pending(attempts 0) ──attempt: 2xx──► delivered
///        ▲    │
///        └────┤ attempt: non-2xx, timeout, refused, and the schedule goes on
///             └ attempt failed, the schedule ended ──► dead ──redeliver──► pending
/// ```
public struct NotificationDelivery: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Waiting for `due`; `attempts` made so far.
        case pending(attempts: Int, due: Timestamp, lastFailure: String?)
        /// Acknowledged by the merchant (2xx within the time limit).
        case delivered(attempts: Int, at: Timestamp)
        /// The schedule ended without an acknowledgement: listed for an operator.
        case dead(attempts: Int, at: Timestamp, lastFailure: String)
    }

    /// What one attempt came to.
    public enum Outcome: Sendable, Equatable {
        /// A 2xx answer within the time limit.
        case acknowledged
        /// Anything else: another status, a timeout, a refused connection, a refused address.
        case failed(String)
    }

    /// The event it tells of (`<order id>-<sequence>`): the id the merchant deduplicates by.
    public let eventID: String
    public private(set) var state: State

    /// A new notification, due at once.
    public init(eventID: String, createdAt: Timestamp) {
        self.eventID = eventID
        self.state = .pending(attempts: 0, due: createdAt, lastFailure: nil)
    }

    /// A delivery read back from storage.
    public init(eventID: String, state: State) {
        self.eventID = eventID
        self.state = state
    }

    /// Whether an attempt is due at `now`.
    public func isDue(at now: Timestamp) -> Bool {
        if case .pending(_, let due, _) = state { return due <= now }
        return false
    }

    /// Records an attempt made at `now`; a failure is retried on `schedule`, or ends dead.
    public mutating func record(_ outcome: Outcome, at now: Timestamp, schedule: NotificationSchedule) {
        guard case .pending(let attempts, _, _) = state else { return }
        let made = attempts + 1
        switch outcome {
        case .acknowledged:
            state = .delivered(attempts: made, at: now)
        case .failed(let why):
            if let wait = schedule.delay(after: made) {
                state = .pending(attempts: made, due: now.adding(milliseconds: wait.wholeMilliseconds), lastFailure: why)
            } else {
                state = .dead(attempts: made, at: now, lastFailure: why)
            }
        }
    }

    /// An operator's redelivery of a dead notification: due at once, its schedule anew.
    /// Anything but a dead notification is left as it is (false).
    @discardableResult
    public mutating func redeliver(at now: Timestamp) -> Bool {
        guard case .dead(_, _, let lastFailure) = state else { return false }
        state = .pending(attempts: 0, due: now, lastFailure: lastFailure)
        return true
    }
}
