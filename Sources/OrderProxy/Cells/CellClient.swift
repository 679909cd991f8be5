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

    /// How this proxy sees each service instance of the cell, in the routing
    /// table's endpoint order (empty in process: there is no instance to pick).
    func serviceInstances() -> [CellServiceInstanceStatus]
}

extension CellClient {
    public var enforcesOwnDeadline: Bool { false }
    public func serviceInstances() -> [CellServiceInstanceStatus] { [] }
}

/// One service instance of a cell as a proxy sees it: what operators read
/// at `/admin/cells` to find a cell service that fails (a standby is only
/// called for its turn at reads and changes, never for creates).
public struct CellServiceInstanceStatus: Sendable, Equatable {
    public var endpoint: String
    /// It takes the cell's creates: the first instance that is not passed over.
    public var active: Bool
    /// A call to it failed and none has answered since: calls pass it over (but for a trial now and then).
    public var passedOver: Bool
    /// The last failure of a call to it, and how long ago, whether or not it has answered since.
    public var lastFailure: String?
    public var millisecondsSinceLastFailure: Int64?

    public init(endpoint: String, active: Bool, passedOver: Bool, lastFailure: String? = nil, millisecondsSinceLastFailure: Int64? = nil) {
        self.endpoint = endpoint
        self.active = active
        self.passedOver = passedOver
        self.lastFailure = lastFailure
        self.millisecondsSinceLastFailure = millisecondsSinceLastFailure
    }
}

/// Operator access to the drill faults of cells (embedded: in process).
public protocol CellDrillControl: Sendable {
    func setFault(_ fault: CellFault, on cell: CellID) async throws
    func fault(of cell: CellID) async throws -> CellFault
}
