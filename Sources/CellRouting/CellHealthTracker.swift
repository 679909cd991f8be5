import OrderModel

/// How the health checker judges cells.
public struct HealthCheckPolicy: Sendable, Equatable {
    /// Consecutive failed probes that mark a cell down (k).
    public var failuresToMarkDown: Int
    /// Consecutive good probes that mark a down cell up again (m).
    public var successesToMarkUp: Int
    /// Time between probes of a healthy cell.
    public var intervalMilliseconds: Int64
    /// A probe slower than this counts as failed.
    public var slowProbeMilliseconds: Int64
    /// Longest time between probes of a down cell (the backoff doubles up to it).
    public var maximumBackoffMilliseconds: Int64
    /// When more than this share of the cells look down at once, the checker
    /// assumes its own view is broken and takes none out (panic).
    public var panicShare: Double

    public init(
        failuresToMarkDown: Int = 3, successesToMarkUp: Int = 2, intervalMilliseconds: Int64 = 1000,
        slowProbeMilliseconds: Int64 = 1000, maximumBackoffMilliseconds: Int64 = 8000, panicShare: Double = 0.5
    ) {
        self.failuresToMarkDown = failuresToMarkDown
        self.successesToMarkUp = successesToMarkUp
        self.intervalMilliseconds = intervalMilliseconds
        self.slowProbeMilliseconds = slowProbeMilliseconds
        self.maximumBackoffMilliseconds = maximumBackoffMilliseconds
        self.panicShare = panicShare
    }
}

/// What the health checker publishes after a round.
public struct HealthVerdict: Sendable, Equatable {
    /// Cells that look down, with why.
    public var down: [CellID: String]
    /// Cells that look up.
    public var up: Set<CellID>
    /// More than the panic share looks down: nothing is taken out.
    public var panic: Bool
}

/// The health checker's judgement of every cell: hysteresis (k failures
/// to mark down, m successes to mark up), a backoff that grows while a
/// cell stays down, and the panic threshold. Pure; time is a parameter.
public struct CellHealthTracker: Sendable {
    /// Whether a cell is judged up or down, and why down.
    public enum State: Sendable, Equatable {
        case up
        case down(reason: String)
    }

    struct Record: Sendable {
        var state: State = .up
        var consecutiveFailures = 0
        var consecutiveSuccesses = 0
        var nextProbeAt: Timestamp
        var backoffMilliseconds: Int64
        var lastFailure = ""
    }

    public let policy: HealthCheckPolicy
    private var records: [CellID: Record] = [:]

    public init(policy: HealthCheckPolicy) { self.policy = policy }

    /// A tracker that starts from verdicts already published (a restarted
    /// checker must not lift marks it has not re-examined): these cells
    /// start down, as if after k failed probes, and need m good probes.
    public init(policy: HealthCheckPolicy, down: [CellID: String], now: Timestamp) {
        self.policy = policy
        for (cell, reason) in down {
            records[cell] = Record(
                state: .down(reason: reason), consecutiveFailures: policy.failuresToMarkDown, nextProbeAt: now,
                backoffMilliseconds: policy.intervalMilliseconds
            )
        }
    }

    /// The tracker's state of `cell` (cells never probed are up).
    public func state(of cell: CellID) -> State { records[cell]?.state ?? .up }

    /// The cells among `cells` whose next probe is due at `now`. Cells no
    /// longer listed are forgotten.
    public mutating func cellsDue(among cells: [CellID], at now: Timestamp) -> [CellID] {
        let listed = Set(cells)
        records = records.filter { listed.contains($0.key) }
        var due: [CellID] = []
        for cell in cells {
            let record = records[cell] ?? Record(nextProbeAt: now, backoffMilliseconds: policy.intervalMilliseconds)
            records[cell] = record
            if record.nextProbeAt <= now { due.append(cell) }
        }
        return due
    }

    /// Records one probe of `cell`: `failure` is nil when it succeeded.
    public mutating func record(_ cell: CellID, failure: String?, latencyMilliseconds: Int64, at now: Timestamp) {
        var record = records[cell] ?? Record(nextProbeAt: now, backoffMilliseconds: policy.intervalMilliseconds)
        let failure = failure ?? (latencyMilliseconds > policy.slowProbeMilliseconds ? "probe took \(latencyMilliseconds) ms" : nil)
        if let failure {
            record.consecutiveFailures += 1
            record.consecutiveSuccesses = 0
            record.lastFailure = failure
            if record.consecutiveFailures >= policy.failuresToMarkDown {
                record.state = .down(reason: "\(record.consecutiveFailures) failed probes: \(failure)")
            }
        } else {
            record.consecutiveSuccesses += 1
            record.consecutiveFailures = 0
            if case .down = record.state, record.consecutiveSuccesses >= policy.successesToMarkUp { record.state = .up }
        }
        switch record.state {
        case .up:
            record.backoffMilliseconds = policy.intervalMilliseconds
        case .down:
            // A down cell is probed less and less often while it keeps failing; a good probe resets the pace.
            record.backoffMilliseconds =
                failure == nil ? policy.intervalMilliseconds : min(policy.maximumBackoffMilliseconds, record.backoffMilliseconds * 2)
        }
        record.nextProbeAt = now.adding(milliseconds: record.backoffMilliseconds)
        records[cell] = record
    }

    /// The verdict over `cells`: which look down and which up, and whether
    /// so many look down that none should be taken out.
    public func verdict(over cells: [CellID]) -> HealthVerdict {
        var down: [CellID: String] = [:]
        var up: Set<CellID> = []
        for cell in cells {
            switch state(of: cell) {
            case .up: up.insert(cell)
            case .down(let reason): down[cell] = reason
            }
        }
        let panic = !cells.isEmpty && Double(down.count) / Double(cells.count) > policy.panicShare
        return HealthVerdict(down: down, up: up, panic: panic)
    }
}
