import OrderModel

/// Which service instance of a cell a proxy calls first.
///
/// Creates go to the cell's *active* instance: the first, in the routing
/// table's endpoint order, that has not failed a call lately. Every proxy
/// picks the same one, so that instance's group commit puts the creates of
/// all proxies into the same transactions — fewer, larger commits for the
/// cell's primary (measured on the local cluster: about +30 % creates
/// through the proxies against spreading them, docs/performance.md). Other
/// calls take turns over the instances to spread their load.
///
/// An instance whose call failed is passed over for `passOverMilliseconds`,
/// then tried first again; one that answers is in turn at once. When every
/// instance is passed over, the call starts where it would have anyway (a
/// caller tries the others after it). Pure value type; time is a parameter.
public struct CellInstancePreference: Sendable, Equatable {
    public let instanceCount: Int
    public let passOverMilliseconds: Int64
    private var passedOverUntil: [Timestamp?]

    public init(instanceCount: Int, passOverMilliseconds: Int64 = 5_000) {
        self.instanceCount = instanceCount
        self.passOverMilliseconds = passOverMilliseconds
        self.passedOverUntil = Array(repeating: nil, count: instanceCount)
    }

    /// The instance a create tries first: the active one.
    public func firstForCreate(at now: Timestamp) -> Int {
        first(from: 0, at: now)
    }

    /// The instance any other call tries first: the one whose turn it is, or
    /// the next after it that is not passed over.
    public func first(from turn: Int, at now: Timestamp) -> Int {
        guard instanceCount > 0 else { return 0 }
        let start = turn.magnitude % UInt(instanceCount)
        for offset in 0..<UInt(instanceCount) {
            let instance = Int((start + offset) % UInt(instanceCount))
            if !isPassedOver(instance, at: now) { return instance }
        }
        return Int(start)
    }

    /// Whether `instance` failed within its pass-over time.
    public func isPassedOver(_ instance: Int, at now: Timestamp) -> Bool {
        guard let until = passedOverUntil[instance] else { return false }
        return now < until
    }

    /// Whether any instance has failed and not answered since (a caller can skip recording successes otherwise).
    public var hasFailures: Bool { passedOverUntil.contains { $0 != nil } }

    /// Records a failed call: the instance is passed over for a while.
    public mutating func failed(_ instance: Int, at now: Timestamp) {
        passedOverUntil[instance] = now.adding(milliseconds: passOverMilliseconds)
    }

    /// Records an answered call: the instance is in turn again at once.
    public mutating func answered(_ instance: Int) {
        passedOverUntil[instance] = nil
    }
}
