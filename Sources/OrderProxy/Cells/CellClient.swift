import OrderModel

/// How the proxy talks to one cell: in process when embedded, over RPC in a cluster.
///
/// A conforming client throws ``OrderError`` for refusals the cell made
/// (they reach the merchant as they are) and any other error when the
/// cell could not be reached or failed (the proxy retries creates
/// elsewhere and answers other calls with `cell_unavailable`).
public protocol CellClient: Sendable {
    func create(_ request: CreateOrderRequest) async throws -> CreateOrderResult
    func apply(_ command: OrderCommand, to id: OrderID) async throws -> OrderCommandResult
    func order(_ id: OrderID, consistency: ReadConsistency) async throws -> Order
    func refunds(of id: OrderID) async throws -> [Refund]
    func events(of id: OrderID) async throws -> [OrderEvent]

    /// Whether the client bounds its calls itself, so the proxy need not put
    /// its own deadline around them (saves two tasks per call in process).
    var enforcesOwnDeadline: Bool { get }
}

extension CellClient {
    public var enforcesOwnDeadline: Bool { false }
}

/// Operator access to the drill faults of cells (embedded: in process).
public protocol CellDrillControl: Sendable {
    func setFault(_ fault: CellFault, on cell: CellID) async throws
    func fault(of cell: CellID) async throws -> CellFault
}
