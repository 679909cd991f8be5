/// How fresh a read must be.
public enum ReadConsistency: String, Sendable, Codable, CaseIterable {
    /// From the cell's primary: sees every acknowledged change.
    case strong
    /// From a replica when there is one: may lag, keeps working when the primary is down.
    case eventual
}

/// The answer of a create: the order, and whether this call created it
/// (`false` for an idempotent replay of an earlier create).
public struct CreateOrderResult: Sendable, Equatable {
    public var order: Order
    public var created: Bool

    public init(order: Order, created: Bool) {
        self.order = order
        self.created = created
    }
}

/// The answer of a command: the order after it, the refund it made or
/// replayed, and whether this call changed anything.
public struct OrderCommandResult: Sendable, Equatable {
    public var order: Order
    public var refund: Refund?
    public var changed: Bool

    public init(order: Order, refund: Refund?, changed: Bool) {
        self.order = order
        self.refund = refund
        self.changed = changed
    }

    public init(_ decision: OrderStateMachine.Decision) {
        switch decision {
        case .unchanged(let order, let refund): self.init(order: order, refund: refund, changed: false)
        case .changed(let order, _, let refund): self.init(order: order, refund: refund, changed: true)
        }
    }
}

/// A failed call to a cell that knows whether the cell may have run it. A
/// create that failed after its cell started it may have committed all the
/// same (its answer was lost, or came too late); one the cell never started
/// cannot have. Errors that do not conform may have run.
public protocol CellCallFailure: Error {
    /// False only when the cell certainly did not run the call.
    var mayHaveRun: Bool { get }
}

extension Error {
    /// Whether the cell may have run the call that failed with this error
    /// (``CellCallFailure``; any other error: it may have).
    public var cellMayHaveRunTheCall: Bool { (self as? any CellCallFailure)?.mayHaveRun ?? true }
}

/// A fault an operator injects into a cell for a drill.
public enum CellFault: Sendable, Equatable {
    /// The cell behaves normally.
    case none
    /// Every call to the cell fails as if it were down.
    case fail
    /// Every call to the cell is delayed by this many milliseconds.
    case latency(milliseconds: Int)
    /// Every call to the cell runs, and its answer is held back this many
    /// milliseconds: what a caller sees when the cell did the work and its
    /// answer was lost or came too late (a create that committed after all).
    case lateAnswer(milliseconds: Int)

    /// How long the answer of a call is held back after the call ran.
    public var answerDelay: Duration? {
        guard case .lateAnswer(let milliseconds) = self else { return nil }
        return .milliseconds(milliseconds)
    }
}
