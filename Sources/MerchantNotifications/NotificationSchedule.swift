import OrderModel

/// When a notification that was not acknowledged is tried again: delays
/// after each failed attempt, like WeChat Pay's (15 s, 15 s, 30 s, 3 min,
/// 10 min, 20 min, 30 min, then every 30 min … about a day in all), after
/// which the notification is dead, listed for an operator to redeliver.
///
/// Configurable (a test compresses it to milliseconds by configuration,
/// not by another code path): `delays` are the waits after attempts 1, 2,
/// …; after the last listed one, `repeatDelay` until `maximumAttempts`.
public struct NotificationSchedule: Sendable, Equatable, Codable {
    public var delays: [Duration]
    public var repeatDelay: Duration
    public var maximumAttempts: Int

    public init(delays: [Duration], repeatDelay: Duration, maximumAttempts: Int) {
        precondition(maximumAttempts >= 1 && delays.allSatisfy { $0 >= .zero } && repeatDelay >= .zero)
        self.delays = delays
        self.repeatDelay = repeatDelay
        self.maximumAttempts = maximumAttempts
    }

    /// 15 s, 15 s, 30 s, 3 min, 10 min, 20 min, 30 min, then every 30 min:
    /// 54 attempts span 24 h 4 min after the first.
    public static let standard = NotificationSchedule(
        delays: [.seconds(15), .seconds(15), .seconds(30), .seconds(180), .seconds(600), .seconds(1200), .seconds(1800)],
        repeatDelay: .seconds(1800), maximumAttempts: 54
    )

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
