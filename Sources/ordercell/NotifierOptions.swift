import ArgumentParser
import CellNotifier
import MerchantNotifications

/// How a cell's notifier sends merchant notifications (docs/events.md): the
/// same options for `ordercell dev`, `ordercell cell` and `ordercell cluster
/// up` (which hands them to its cell services). The defaults are WeChat
/// Pay's schedule; a test or a trial compresses it here.
struct NotifierOptions: ParsableArguments {
    @Option(help: "Waits after failed attempts 1, 2, …, comma-separated (15s,3m,6h,200ms); default WeChat Pay's 15s,15s,30s,3m,10m,20m,30m,30m,30m,60m,3h,3h,3h,6h,6h.")
    var notifyRetryDelays: String?
    @Option(help: "Attempts before a notification is dead (1…1000; default 16). Past the listed delays, the last one repeats.")
    var notifyAttempts: Int?
    @Option(help: "An attempt is acknowledged by a 2xx within this time (default 5s).") var notifyAttemptTimeout = "5s"
    @Option(help: "How often an idle notifier reads the feed (default 500ms).") var notifyPollInterval = "500ms"
    @Option(help: "The notifier lease: a stopped cell service's notifier is taken over after at most this long (default 15s).")
    var notifyLease = "15s"
    @Flag(help: "Run no notifier: merchants' notifications wait in the feed until a notifier runs.") var noNotifier = false

    /// The configuration these options give; nil with --no-notifier.
    func configuration() throws -> NotifierConfiguration? {
        guard !noNotifier else { return nil }
        let standard = NotificationSchedule.standard
        let delays = try notifyRetryDelays.map { text in try text.split(separator: ",").map { try Self.duration(String($0), option: "--notify-retry-delays") } }
            ?? standard.delays
        let schedule = try NotificationSchedule(
            delays: delays, repeatDelay: delays.last ?? standard.repeatDelay, maximumAttempts: notifyAttempts ?? standard.maximumAttempts
        ).validated()
        let timeout = try Self.duration(notifyAttemptTimeout, option: "--notify-attempt-timeout")
        let poll = try Self.duration(notifyPollInterval, option: "--notify-poll-interval")
        let lease = try Self.duration(notifyLease, option: "--notify-lease")
        guard timeout > .zero, poll > .zero, lease >= .seconds(1) else {
            throw ValidationError("--notify-attempt-timeout and --notify-poll-interval must be positive, --notify-lease at least 1s")
        }
        // The lease is renewed every third of it: an attempt started just before a renewal is due ends before the lease could lapse.
        guard timeout <= lease * 2 / 3 else {
            throw ValidationError("--notify-attempt-timeout must be at most two thirds of --notify-lease (an attempt ends while its notifier still holds the cell)")
        }
        return NotifierConfiguration(schedule: schedule, attemptTimeout: timeout, pollInterval: poll, leaseDuration: lease)
    }

    /// These options as arguments, for a process started with the same ones.
    var arguments: [String] {
        (notifyRetryDelays.map { ["--notify-retry-delays", $0] } ?? []) + (notifyAttempts.map { ["--notify-attempts", "\($0)"] } ?? [])
            + ["--notify-attempt-timeout", notifyAttemptTimeout, "--notify-poll-interval", notifyPollInterval, "--notify-lease", notifyLease]
            + (noNotifier ? ["--no-notifier"] : [])
    }

    /// `200ms`, `15s`, `3m`, `6h`.
    static func duration(_ text: String, option: String) throws -> Duration {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (unit, milliseconds) in units where text.hasSuffix(unit) {
            if let value = Int64(text.dropLast(unit.count)), value >= 0, value <= 30 * 86_400_000 / milliseconds {
                return .milliseconds(value * milliseconds)
            }
        }
        throw ValidationError("\(option): '\(text.prefix(24))' is not a duration like 200ms, 15s, 3m or 6h")
    }
}
