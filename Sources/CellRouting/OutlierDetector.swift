import OrderModel

/// When passive outlier detection takes a failing cell out of placement.
public struct OutlierPolicy: Sendable, Equatable {
    /// Consecutive failed calls that eject a cell.
    public var consecutiveFailures: Int
    /// First ejection's length; each further ejection lasts one base longer.
    public var baseEjectionMilliseconds: Int64
    /// Upper bound of an ejection.
    public var maximumEjectionMilliseconds: Int64
    /// Consecutive successes after which earlier ejections are forgotten.
    public var successesToForgive: Int

    public init(
        consecutiveFailures: Int = 5, baseEjectionMilliseconds: Int64 = 10_000,
        maximumEjectionMilliseconds: Int64 = 300_000, successesToForgive: Int = 100
    ) {
        self.consecutiveFailures = consecutiveFailures
        self.baseEjectionMilliseconds = baseEjectionMilliseconds
        self.maximumEjectionMilliseconds = maximumEjectionMilliseconds
        self.successesToForgive = successesToForgive
    }
}

/// Passive outlier detection: every proxy watches the outcome of its own
/// calls and ejects a cell that fails repeatedly for a growing backoff,
/// without waiting for the health checker or an operator.
///
/// Pure value type; time is a parameter. After an ejection lapses the cell
/// is a candidate again; one more failure ejects it again, for longer.
public struct OutlierDetector: Sendable {
    struct CellRecord: Sendable {
        var consecutiveFailures = 0
        var consecutiveSuccesses = 0
        var ejections = 0
        var ejectedUntil: Timestamp?
    }

    public let policy: OutlierPolicy
    private var records: [CellID: CellRecord] = [:]

    public init(policy: OutlierPolicy = OutlierPolicy()) {
        self.policy = policy
    }

    public mutating func recordSuccess(_ cell: CellID) {
        guard var record = records[cell] else { return }
        record.consecutiveFailures = 0
        record.consecutiveSuccesses += 1
        if record.consecutiveSuccesses >= policy.successesToForgive {
            records[cell] = nil
        } else {
            records[cell] = record
        }
    }

    /// Records a failed call; returns `true` when this failure ejected the cell.
    @discardableResult
    public mutating func recordFailure(_ cell: CellID, at now: Timestamp) -> Bool {
        var record = records[cell] ?? CellRecord()
        record.consecutiveSuccesses = 0
        record.consecutiveFailures += 1
        var ejected = false
        let alreadyEjected = record.ejectedUntil.map { now < $0 } ?? false
        // A cell back from an ejection that fails again is ejected at once.
        let threshold = record.ejections > 0 ? 1 : policy.consecutiveFailures
        if !alreadyEjected, record.consecutiveFailures >= threshold {
            record.ejections += 1
            let length = min(policy.baseEjectionMilliseconds * Int64(record.ejections), policy.maximumEjectionMilliseconds)
            record.ejectedUntil = now.adding(milliseconds: length)
            record.consecutiveFailures = 0
            ejected = true
        }
        records[cell] = record
        return ejected
    }

    public func isEjected(_ cell: CellID, at now: Timestamp) -> Bool {
        guard let until = records[cell]?.ejectedUntil else { return false }
        return now < until
    }

    /// The cells ejected at `now`, with when each ejection lapses.
    public func ejections(at now: Timestamp) -> [CellID: Timestamp] {
        var result: [CellID: Timestamp] = [:]
        for (cell, record) in records {
            if let until = record.ejectedUntil, now < until { result[cell] = until }
        }
        return result
    }
}
