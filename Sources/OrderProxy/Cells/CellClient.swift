import OrderModel

/// How the proxy talks to one cell: in process when embedded, over RPC in a cluster.
///
/// A conforming client throws ``OrderError`` for refusals the cell made
/// (they reach the merchant as they are) and any other error when the
/// cell could not be reached or failed (the proxy retries creates
/// elsewhere and answers other calls with `cell_unavailable`).
public protocol CellClient: Sendable {
    /// Creates (or meets) the order; `keyStatus` says whether its key was
    /// bound to this cell (``MerchantKeyStatus/reserved``) or its slot could not be reached.
    func create(_ request: CreateOrderRequest, keyStatus: MerchantKeyStatus) async throws -> CreateOrderResult
    /// Binds the key and creates the order in one transaction, in the cell
    /// holding the key's index slot; `attempt` names this create call in the index.
    func createBound(_ request: CreateOrderRequest, attempt: UInt64) async throws -> BoundCreateResult
    /// `merchant` (nil: any): the caller acts for that merchant, and another merchant's order is
    /// `order_not_found` as one that does not exist — checked by the cell, which has the order at hand.
    func apply(_ command: OrderCommand, to id: OrderID, ownedBy merchant: String?) async throws -> OrderCommandResult
    func order(_ id: OrderID, consistency: ReadConsistency) async throws -> Order
    func refunds(of id: OrderID, ownedBy merchant: String?) async throws -> [Refund]
    func events(of id: OrderID, ownedBy merchant: String?) async throws -> [OrderEvent]

    // The merchant-key index: calls to the cell holding a key's slot (docs/merchant-keys.md).
    func bindMerchantKey(_ key: MerchantKey, candidate: CellID, attempt: UInt64) async throws -> MerchantKeyBinding
    func moveMerchantKey(_ key: MerchantKey, from: CellID, to: CellID, attempt: UInt64) async throws -> MerchantKeyBinding
    func claimMerchantKey(_ key: MerchantKey, for order: OrderID) async throws -> MerchantKeyClaim
    /// Many claims in one transaction (the reconciler's pages), answers in the same order; a refused one fails alone.
    func claimMerchantKeys(_ claims: [(key: MerchantKey, order: OrderID)]) async throws -> [Result<MerchantKeyClaim, OrderError>]
    func merchantKeyEntry(_ key: MerchantKey, consistency: ReadConsistency) async throws -> MerchantKeyEntry?
    /// The reconciler's conditional write of a settled entry; whether it was written.
    func settleMerchantKey(_ settled: MerchantKeyEntry, ifRevision revision: Int) async throws -> Bool
    func movedMerchantKeys(updatedBefore cutoff: Timestamp, limit: Int) async throws -> [MerchantKeyEntry]

    // A cell's own orders by merchant key, and their key status.
    /// The cell's order for `key`; `order_not_found` when it has none.
    func order(_ key: MerchantKey, consistency: ReadConsistency) async throws -> Order
    /// Unverified orders created before `cutoff`, oldest first, after `after` (nil: from the oldest).
    func unverifiedOrders(createdBefore cutoff: Timestamp, after: OrderListPosition?, limit: Int) async throws -> [Order]
    func setKeyStatus(_ status: MerchantKeyStatus, of ids: [OrderID]) async throws

    // Moving index slots: the control plane's calls (docs/merchant-keys.md, "Moving slots").
    /// Freezes (or thaws) index slots in the cell's storage; once frozen, no entry of them changes there.
    func setIndexSlots(_ slots: [Int], frozen: Bool) async throws
    /// A page of the entries of `slots`, all frozen in the cell, scanning keys after `after`.
    func frozenMerchantKeys(inSlots slots: [Int], after: MerchantKey?, limit: Int) async throws -> MerchantKeyPage
    /// Writes entries copied from another cell, as they are.
    func importMerchantKeys(_ entries: [MerchantKeyEntry]) async throws
    /// Deletes the entries of `keys` whose slot is frozen in the cell; how many it deleted.
    func deleteFrozenMerchantKeys(_ keys: [MerchantKey]) async throws -> Int

    // The cell's notifier (docs/events.md): what operators see and do through the control plane.
    /// The notifier's backlog and lag, and up to `limit` notifications in `status` (none when nil) after event id `after`.
    func notifierStatus(_ status: NotificationStatus?, after: String?, limit: Int) async throws -> NotifierStatusPage
    /// Makes dead notifications due again (every dead one when `eventIDs` is nil), naming the operator; how many.
    func redeliverNotifications(_ eventIDs: [String]?, by operator: String) async throws -> Int

    /// Whether the client bounds its calls itself, so the proxy need not put
    /// its own deadline around them (saves two tasks per call in process).
    var enforcesOwnDeadline: Bool { get }

    /// How this proxy sees each service instance of the cell, in the routing
    /// table's endpoint order (empty in process: there is no instance to pick).
    func serviceInstances() -> [CellServiceInstanceStatus]
}

extension CellClient {
    /// For a caller that acts for no one merchant (the payment service, an operator, the health checker).
    public func apply(_ command: OrderCommand, to id: OrderID) async throws -> OrderCommandResult {
        try await apply(command, to: id, ownedBy: nil)
    }

    public func refunds(of id: OrderID) async throws -> [Refund] { try await refunds(of: id, ownedBy: nil) }
    public func events(of id: OrderID) async throws -> [OrderEvent] { try await events(of: id, ownedBy: nil) }
}

extension CellClient {
    public func create(_ request: CreateOrderRequest) async throws -> CreateOrderResult {
        try await create(request, keyStatus: .reserved)
    }

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
    /// Sets `fault` on `cell`: until cleared, or (`calls`) for that many calls of each of its service instances.
    /// `operator` is who asked, as the caller authenticated them: the cell records it.
    func setFault(_ fault: CellFault, calls: Int?, on cell: CellID, by operator: String) async throws
    func fault(of cell: CellID) async throws -> CellFault
}
