import OrderModel

/// When a notification that was not acknowledged is tried again: delays
/// after each failed attempt, WeChat Pay's (15 s, 15 s, 30 s, 3 min,
/// 10 min, 20 min, 30 min, 30 min, 30 min, 60 min, 3 h, 3 h, 3 h, 6 h, 6 h:
/// 16 attempts over 24 h 4 min), after which the notification is dead,
/// listed for an operator to redeliver.
///
/// Configurable (a test compresses it to milliseconds by configuration,
/// not by another code path): `delays` are the waits after attempts 1, 2,
/// …; after the last listed one, `repeatDelay` until `maximumAttempts`.
public struct NotificationSchedule: Sendable, Equatable, Codable {
    public var delays: [Duration]
    public var repeatDelay: Duration
    public var maximumAttempts: Int

    /// A schedule read from configuration is checked by ``validated()``; one made in code must be valid.
    public init(delays: [Duration], repeatDelay: Duration, maximumAttempts: Int) {
        precondition(maximumAttempts >= 1 && delays.allSatisfy { $0 >= .zero } && repeatDelay >= .zero)
        self.delays = delays
        self.repeatDelay = repeatDelay
        self.maximumAttempts = maximumAttempts
    }

    /// WeChat Pay's: 16 attempts, the last 24 h 4 min after the first.
    public static let standard = NotificationSchedule(
        delays: [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600].map { Duration.seconds($0) },
        repeatDelay: .seconds(21600), maximumAttempts: 16
    )

    /// This schedule, if it makes sense (decoded from configuration, it was not checked).
    public func validated() throws(OrderError) -> NotificationSchedule {
        guard (1...1000).contains(maximumAttempts), delays.allSatisfy({ $0 >= .zero }), repeatDelay >= .zero else {
            throw OrderError.invalidRequest("a notification schedule has 1...1000 attempts and no negative delay")
        }
        return self
    }

    /// The wait after failed attempt `attempt` (1-based); nil when it was the last.
    public func delay(after attempt: Int) -> Duration? {
        guard attempt >= 1, attempt < maximumAttempts else { return nil }
        return attempt <= delays.count ? delays[attempt - 1] : repeatDelay
    }

    /// From the first attempt to the last, if every one fails.
    public var span: Duration {
        (1..<maximumAttempts).reduce(Duration.zero) { $0 + (delay(after: $1) ?? .zero) }
    }
}
