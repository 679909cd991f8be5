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

/// A fault an operator injects into a cell for a drill.
public enum CellFault: Sendable, Equatable {
    /// The cell behaves normally.
    case none
    /// Every call to the cell fails as if it were down.
    case fail
    /// Every call to the cell is delayed by this many milliseconds.
    case latency(milliseconds: Int)
}
