import MerchantNotifications

/// How a cell's notifier works. The defaults are a production's; a test
/// compresses the schedule and the intervals by configuration, through the
/// same code.
public struct NotifierConfiguration: Sendable {
    /// When a notification that was not acknowledged is tried again, and when it is dead.
    public var schedule: NotificationSchedule
    /// An attempt is acknowledged by a 2xx within this time (connect, send, answer); otherwise it failed.
    public var attemptTimeout: Duration
    /// How often the notifier reads the feed and looks for due notifications when idle.
    public var pollInterval: Duration
    /// How long the notifier lease lasts without renewal: a killed notifier's successor takes over after it.
    public var leaseDuration: Duration
    /// Attempts under way at once, over all merchants.
    public var maximumConcurrentDeliveries: Int
    /// Attempts under way at once to one merchant: a merchant whose endpoint hangs holds at most
    /// these, and every other merchant's notifications go on.
    public var maximumConcurrentPerMerchant: Int
    /// Delivered notifications are deleted after this long (pending and dead ones stay).
    public var deliveredRetention: Duration
    /// Events read from the feed per page.
    public var feedPageSize: Int

    public init(
        schedule: NotificationSchedule = .standard, attemptTimeout: Duration = .seconds(5), pollInterval: Duration = .milliseconds(500),
        leaseDuration: Duration = .seconds(15), maximumConcurrentDeliveries: Int = 64, maximumConcurrentPerMerchant: Int = 4,
        deliveredRetention: Duration = .seconds(7 * 86_400), feedPageSize: Int = 500
    ) {
        precondition(maximumConcurrentDeliveries >= 1 && maximumConcurrentPerMerchant >= 1 && feedPageSize >= 1)
        self.schedule = schedule
        self.attemptTimeout = attemptTimeout
        self.pollInterval = pollInterval
        self.leaseDuration = leaseDuration
        self.maximumConcurrentDeliveries = maximumConcurrentDeliveries
        self.maximumConcurrentPerMerchant = maximumConcurrentPerMerchant
        self.deliveredRetention = deliveredRetention
        self.feedPageSize = feedPageSize
    }
}
