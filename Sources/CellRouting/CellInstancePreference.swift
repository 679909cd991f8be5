import OrderModel

/// Which service instance of a cell a proxy calls first.
///
/// Creates go to the cell's *active* instance: the first, in the routing
/// table's endpoint order, that has not failed a call lately. Every proxy
/// picks the same one while they see the same failures, so that instance's
/// group commit puts the creates of all proxies into the same transactions —
/// fewer, larger commits for the cell's primary (measured on the local
/// cluster: about +30 % creates through the proxies against spreading them,
/// docs/performance.md). Other calls take turns over the instances to
/// spread their load.
///
/// An instance whose call failed is passed over for `passOverMilliseconds`.
/// When that time is up, one call tries it (the trial) and the others keep
/// passing it over for `trialMilliseconds` more, so that an instance that
/// hangs costs one call's wait, not every call's; an answer puts it back in
/// turn. An answer to a call that started before the failure does not. With
/// every instance passed over, a call starts where it would have anyway (a
/// caller tries the others after it). Pure value type; time is a parameter.
public struct CellInstancePreference: Sendable, Equatable {
    /// A failed instance: when it failed, and until when calls pass it over.
    struct PassOver: Sendable, Equatable {
        var failedAt: Timestamp
        var until: Timestamp
    }

    public let instanceCount: Int
    public let passOverMilliseconds: Int64
    public let trialMilliseconds: Int64
    private var passedOver: [PassOver?]

    public init(instanceCount: Int, passOverMilliseconds: Int64 = 5_000, trialMilliseconds: Int64 = 1_000) {
        self.instanceCount = instanceCount
        self.passOverMilliseconds = passOverMilliseconds
        self.trialMilliseconds = trialMilliseconds
        self.passedOver = Array(repeating: nil, count: instanceCount)
    }

    /// The instance a create tries first: the active one.
    public mutating func chooseForCreate(at now: Timestamp) -> Int {
        choose(from: 0, at: now)
    }

    /// The instance a call tries first: the one whose turn it is (creates:
    /// turn 0), or the next after it that is not passed over. Choosing an
    /// instance whose pass-over time is up makes this call its trial.
    public mutating func choose(from turn: Int, at now: Timestamp) -> Int {
        guard instanceCount > 0 else { return 0 }
        let start = Int(turn.magnitude % UInt(instanceCount))
        for offset in 0..<instanceCount {
            let instance = (start + offset) % instanceCount
            guard let mark = passedOver[instance] else { return instance }
            if now >= mark.until {
                passedOver[instance]?.until = now.adding(milliseconds: trialMilliseconds)
                return instance
            }
        }
        return start
    }

    /// Whether `instance` failed and is passed over at `now`.
    public func isPassedOver(_ instance: Int, at now: Timestamp) -> Bool {
        guard let mark = passedOver[instance] else { return false }
        return now < mark.until
    }

    /// Whether any instance has failed and not answered since (a caller can skip recording answers otherwise).
    public var hasFailures: Bool { passedOver.contains { $0 != nil } }

    /// Whether `instance` failed and has not answered since (passed over, but for its trials).
    public func hasFailed(_ instance: Int) -> Bool { passedOver[instance] != nil }

    /// The instance that takes creates while every instance answers as it
    /// does now: the first that is not passed over — no failure that passes
    /// it over since it last answered (nil: all are; creates then go to
    /// trials and the first instance).
    public var activeInstance: Int? { passedOver.firstIndex { $0 == nil } }

    /// Records a failed call; returns whether the instance was in turn until now (newly passed over).
    @discardableResult
    public mutating func failed(_ instance: Int, at now: Timestamp) -> Bool {
        let wasInTurn = passedOver[instance] == nil
        passedOver[instance] = PassOver(failedAt: now, until: now.adding(milliseconds: passOverMilliseconds))
        return wasInTurn
    }

    /// Records an answer to a call that started at `callStarted`; it puts the
    /// instance back in turn unless it failed after that call started.
    /// Returns whether it did (the instance had been passed over).
    @discardableResult
    public mutating func answered(_ instance: Int, callStarted: Timestamp) -> Bool {
        guard let mark = passedOver[instance], mark.failedAt < callStarted else { return false }
        passedOver[instance] = nil
        return true
    }
}
