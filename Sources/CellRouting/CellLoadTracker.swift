import OrderModel

/// Counts requests per cell in fixed windows, for hotspot balancing.
///
/// Placement weighs cells by the counts of the last *completed* window, so
/// the weights stay constant for a whole window: two placements of the same
/// key within a window see the same weights. Pure; time is a parameter.
public struct CellLoadTracker: Sendable {
    public let windowMilliseconds: Int64
    private var windowStart: Int64
    private var current: [CellID: Int] = [:]
    private var previous: [CellID: Int] = [:]

    public init(windowMilliseconds: Int64 = 1000, now: Timestamp) {
        precondition(windowMilliseconds > 0)
        self.windowMilliseconds = windowMilliseconds
        self.windowStart = now.millisecondsSinceEpoch
    }

    /// Counts one request routed to `cell`.
    public mutating func record(_ cell: CellID, at now: Timestamp) {
        roll(to: now)
        current[cell, default: 0] += 1
    }

    /// Requests routed to `cell` in the last completed window.
    public mutating func recentLoad(of cell: CellID, at now: Timestamp) -> Int {
        roll(to: now)
        return previous[cell] ?? 0
    }

    /// The last completed window's counts.
    public mutating func recentLoads(at now: Timestamp) -> [CellID: Int] {
        roll(to: now)
        return previous
    }

    private mutating func roll(to now: Timestamp) {
        let elapsed = now.millisecondsSinceEpoch - windowStart
        guard elapsed >= windowMilliseconds else { return }
        let windows = elapsed / windowMilliseconds
        previous = windows == 1 ? current : [:]
        current = [:]
        windowStart += windows * windowMilliseconds
    }
}
