import CellProtocol
import CellRouting
import Logging
import OrderModel
import ServiceLifecycle
import Synchronization

/// The proxy's client of one cell over the cell protocol, over the cell's
/// service instances: creates go to the cell's active instance and other
/// calls take turns (``CellInstancePreference``); a call that fails on one
/// instance is tried once on each other (every cell call is idempotent),
/// and the failed instance is passed over for a while. Connections are
/// long-lived and multiplexed.
public final class CellServiceClient: CellClient {
    public let cell: CellID
    public let endpoints: [CellServiceEndpoint]
    private let instances: [CellServiceInstance]
    private let next = Atomic<Int>(0)
    private let preference: Mutex<CellInstancePreference>
    /// Each instance's last failure and when (on ``clock``), for operators; written only when a call fails.
    private let lastFailures: Mutex<[(reason: String, at: Timestamp)?]>
    private let timeout: Duration
    private let clock: @Sendable () -> Timestamp
    private let logger: Logger

    /// Every attempt carries a deadline the transport enforces with its own
    /// timers, so the proxy adds none of its own.
    public var enforcesOwnDeadline: Bool { true }

    /// - Parameters:
    ///   - endpoints: each cell service instance of the cell; the first that has not failed lately takes the creates.
    ///   - tls: chosen explicitly (``CellClientTLS/disabled`` on loopback only).
    ///   - passOver: how long an instance whose call failed is passed over.
    ///   - clock: measures the pass-over time (monotonic by default).
    public init(
        cell: CellID, endpoints: [CellServiceEndpoint], tls: CellClientTLS, timeout: Duration, passOver: Duration = .seconds(5),
        clock: @escaping @Sendable () -> Timestamp = CellServiceClient.monotonicClock, logger: Logger = Logger(label: "ordercell.proxy")
    ) {
        self.cell = cell
        self.endpoints = endpoints
        self.timeout = timeout
        self.clock = clock
        self.logger = logger
        // A trial of an instance whose pass-over time is up may take its whole share of the deadline.
        let share = timeout / max(1, endpoints.count)
        self.preference = Mutex(
            CellInstancePreference(
                instanceCount: endpoints.count, passOverMilliseconds: passOver.wholeMilliseconds, trialMilliseconds: share.wholeMilliseconds
            )
        )
        self.lastFailures = Mutex(Array(repeating: nil, count: endpoints.count))
        self.instances = endpoints.map { CellServiceInstance($0, tls: tls) }
    }

    public func shutdown() {
        for instance in instances { instance.shutdown() }
    }

    /// ``shutdown()``, then waits until every instance's connection is closed.
    public func shutdownAndWait() async {
        for instance in instances { await instance.shutdownAndWait() }
    }

    public func serviceInstances() -> [CellServiceInstanceStatus] {
        let now = clock()
        let (active, failed) = preference.withLock { preference in
            (preference.activeInstance, endpoints.indices.map(preference.hasFailed))
        }
        let failures = lastFailures.withLock { $0 }
        return endpoints.indices.map { index in
            CellServiceInstanceStatus(
                endpoint: endpoints[index].description, active: index == active, passedOver: failed[index], lastFailure: failures[index]?.reason,
                millisecondsSinceLastFailure: failures[index].map { now.millisecondsSinceEpoch - $0.at.millisecondsSinceEpoch }
            )
        }
    }

    /// Each instance gets an equal share of the call's deadline.
    private var share: Duration { timeout / max(1, instances.count) }

    /// Milliseconds since the first call on a monotonic clock: pass-over
    /// times must not move with the wall clock.
    @Sendable public static func monotonicClock() -> Timestamp {
        Timestamp(millisecondsSinceEpoch: monotonicOrigin.duration(to: .now).wholeMilliseconds)
    }

    private static let monotonicOrigin = ContinuousClock.now

    /// Whether a failed call says the instance is broken, gone or hanging —
    /// then it is passed over. A call the server found expired in its queue
    /// (an overloaded instance: every proxy sees it alike) or a client shut
    /// down says nothing about the instance.
    public static func passesOver(_ error: any Error) -> Bool {
        switch error as? CellProtocolError {
        case .expiredBeforeStart, .shutDown: false
        default: true
        }
    }

    /// Calls one instance after the other, starting with the cell's active
    /// instance (creates) or the next in turn (the rest).
    private func call<T: Sendable>(
        creating: Bool = false, _ body: (CellServiceInstance, Duration) async throws -> T
    ) async throws -> T {
        guard !instances.isEmpty else { throw CellProtocolError.unreachable("cell \(cell) has no service endpoints") }
        let started = clock()
        let turn = creating ? 0 : next.wrappingAdd(1, ordering: .relaxed).oldValue
        // One lock when every instance answers; failures and recoveries take one more each.
        let (start, hasFailures) = preference.withLock { ($0.choose(from: turn, at: started), $0.hasFailures) }
        let share = self.share
        var lastError: (any Error)?
        for offset in 0..<instances.count {
            let index = (start + offset) % instances.count
            do {
                let answer = try await body(instances[index], share)
                // An instance that failed after this call started stays passed over (see CellInstancePreference).
                if hasFailures || offset > 0, preference.withLock({ $0.answered(index, callStarted: started) }) {
                    logger.notice("cell service answers again", metadata: ["cell": "\(cell)", "endpoint": "\(endpoints[index].description)"])
                }
                return answer
            } catch let refusal as OrderError {
                throw refusal
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                let now = clock()
                let reason = "\(error)"
                lastFailures.withLock { $0[index] = (reason, now) }
                if Self.passesOver(error), preference.withLock({ $0.failed(index, at: now) }) {
                    logger.warning(
                        "cell service passed over", metadata: ["cell": "\(cell)", "endpoint": "\(endpoints[index].description)", "error": "\(error)"]
                    )
                }
                // Once an instance may have run the call, the cell may have: a later "not run" does not undo that.
                if error.cellMayHaveRunTheCall || lastError?.cellMayHaveRunTheCall != true { lastError = error }
            }
        }
        throw lastError!
    }

    public func create(_ request: CreateOrderRequest, keyStatus: MerchantKeyStatus) async throws -> CreateOrderResult {
        let message = Ordercell_Cell_V1_CreateOrderRequest(request, keyStatus: keyStatus)
        let reply = try await call(creating: true) { try await $0.createOrder(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return CreateOrderResult(order: try reply.order.domain(), created: reply.created)
    }

    public func createBound(_ request: CreateOrderRequest, attempt: UInt64) async throws -> BoundCreateResult {
        var message = Ordercell_Cell_V1_CreateOrderRequest(request)
        message.bindAttempt = attempt
        let reply = try await call(creating: true) { [message] in try await $0.createOrder(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        if reply.hasBoundElsewhere { return .boundElsewhere(try reply.boundElsewhere.domain()) }
        return .order(CreateOrderResult(order: try reply.order.domain(), created: reply.created))
    }

    public func apply(_ command: OrderCommand, to id: OrderID, ownedBy merchant: String?) async throws -> OrderCommandResult {
        var message = Ordercell_Cell_V1_ApplyCommandRequest(command, orderID: id)
        message.ownerMerchantID = merchant ?? ""
        let reply = try await call { [message] in try await $0.applyCommand(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return OrderCommandResult(
            order: try reply.order.domain(), refund: reply.hasRefund ? try reply.refund.domain() : nil, changed: reply.changed
        )
    }

    public func order(_ id: OrderID, consistency: ReadConsistency) async throws -> Order {
        var message = Ordercell_Cell_V1_GetOrderRequest()
        message.orderID = id.description
        message.eventual = consistency == .eventual
        let reply = try await call { [message] in try await $0.getOrder(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.order.domain()
    }

    public func refunds(of id: OrderID, ownedBy merchant: String?) async throws -> [Refund] {
        var message = Ordercell_Cell_V1_OrderRef()
        message.orderID = id.description
        message.ownerMerchantID = merchant ?? ""
        let reply = try await call { [message] in try await $0.listRefunds(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.refunds.map { try $0.domain() }
    }

    public func events(of id: OrderID, ownedBy merchant: String?) async throws -> [OrderEvent] {
        var message = Ordercell_Cell_V1_OrderRef()
        message.orderID = id.description
        message.ownerMerchantID = merchant ?? ""
        let reply = try await call { [message] in try await $0.listEvents(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.events.map { try $0.domain(orderID: id) }
    }

    // MARK: - Merchant-key index

    public func bindMerchantKey(_ key: MerchantKey, candidate: CellID, attempt: UInt64) async throws -> MerchantKeyBinding {
        var message = Ordercell_Cell_V1_BindKeyRequest()
        message.key = Ordercell_Cell_V1_MerchantKeyRef(key)
        message.candidateCell = Int32(candidate.rawValue)
        message.attempt = attempt
        // With the creates: the cell's active instance, whose index writes share its connection pool's warm path.
        let reply = try await call(creating: true) { [message] in try await $0.bindKey(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.domain()
    }

    public func moveMerchantKey(_ key: MerchantKey, from: CellID, to: CellID, attempt: UInt64) async throws -> MerchantKeyBinding {
        var message = Ordercell_Cell_V1_MoveKeyRequest()
        message.key = Ordercell_Cell_V1_MerchantKeyRef(key)
        message.fromCell = Int32(from.rawValue)
        message.toCell = Int32(to.rawValue)
        message.attempt = attempt
        let reply = try await call(creating: true) { [message] in try await $0.moveKey(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.domain()
    }

    public func claimMerchantKey(_ key: MerchantKey, for order: OrderID) async throws -> MerchantKeyClaim {
        var message = Ordercell_Cell_V1_ClaimKeyRequest()
        message.key = Ordercell_Cell_V1_MerchantKeyRef(key)
        message.orderID = order.description
        let reply = try await call { [message] in try await $0.claimKey(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.domain()
    }

    public func merchantKeyEntry(_ key: MerchantKey, consistency: ReadConsistency) async throws -> MerchantKeyEntry? {
        let message = Ordercell_Cell_V1_MerchantKeyRef(key, consistency: consistency)
        let reply = try await call { try await $0.getKeyEntry(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return reply.hasEntry ? try reply.entry.domain() : nil
    }

    public func settleMerchantKey(_ settled: MerchantKeyEntry, ifRevision revision: Int) async throws -> Bool {
        var message = Ordercell_Cell_V1_SettleKeyRequest()
        message.entry = Ordercell_Cell_V1_KeyEntry(settled)
        message.ifRevision = Int32(clamping: revision)
        let reply = try await call { [message] in try await $0.settleKey(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return reply.written
    }

    public func movedMerchantKeys(updatedBefore cutoff: Timestamp, limit: Int) async throws -> [MerchantKeyEntry] {
        var message = Ordercell_Cell_V1_ReconcileListRequest()
        message.beforeMs = cutoff.millisecondsSinceEpoch
        message.limit = Int32(clamping: limit)
        let reply = try await call { [message] in try await $0.listMovedKeys(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.entries.map { try $0.domain() }
    }

    public func order(_ key: MerchantKey, consistency: ReadConsistency) async throws -> Order {
        let message = Ordercell_Cell_V1_MerchantKeyRef(key, consistency: consistency)
        let reply = try await call { try await $0.findOrder(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.order.domain()
    }

    public func unverifiedOrders(createdBefore cutoff: Timestamp, after: OrderListPosition?, limit: Int) async throws -> [Order] {
        var message = Ordercell_Cell_V1_ReconcileListRequest()
        message.beforeMs = cutoff.millisecondsSinceEpoch
        message.limit = Int32(clamping: limit)
        if let after {
            message.afterOrderID = after.id.description
            message.afterCreatedAtMs = after.createdAt.millisecondsSinceEpoch
        }
        let reply = try await call { [message] in try await $0.listUnverified(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.orders.map { try $0.domain() }
    }

    public func claimMerchantKeys(_ claims: [(key: MerchantKey, order: OrderID)]) async throws -> [Result<MerchantKeyClaim, OrderError>] {
        var message = Ordercell_Cell_V1_ClaimKeysRequest()
        message.claims = claims.map { claim in
            var item = Ordercell_Cell_V1_ClaimKeyRequest()
            item.key = Ordercell_Cell_V1_MerchantKeyRef(claim.key)
            item.orderID = claim.order.description
            return item
        }
        let reply = try await call { [message] in try await $0.claimKeys(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        guard reply.claims.count == claims.count else { throw RPCDecodingError("\(reply.claims.count) answers to \(claims.count) claims") }
        return try reply.claims.map { claim in claim.hasRefusal ? .failure(claim.refusal.orderError) : .success(try claim.domain()) }
    }

    public func setKeyStatus(_ status: MerchantKeyStatus, of ids: [OrderID]) async throws {
        var message = Ordercell_Cell_V1_SetKeyStatusRequest()
        message.orderIds = ids.map(\.description)
        message.keyStatus = status.rawValue
        let reply = try await call { [message] in try await $0.setKeyStatus(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
    }

    public func setIndexSlots(_ slots: [Int], frozen: Bool) async throws {
        var message = Ordercell_Cell_V1_FenceSlotsRequest()
        message.slots = slots.map(Int32.init)
        message.frozen = frozen
        let reply = try await call { [message] in try await $0.fenceSlots(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
    }

    public func frozenMerchantKeys(inSlots slots: [Int], after: MerchantKey?, limit: Int) async throws -> MerchantKeyPage {
        var message = Ordercell_Cell_V1_ExportKeysRequest()
        message.slots = slots.map(Int32.init)
        if let after { message.after = Ordercell_Cell_V1_MerchantKeyRef(after) }
        message.limit = Int32(clamping: limit)
        let reply = try await call { [message] in try await $0.exportKeys(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return MerchantKeyPage(entries: try reply.entries.map { try $0.domain() }, next: reply.hasNext ? try reply.next.domain() : nil)
    }

    public func importMerchantKeys(_ entries: [MerchantKeyEntry]) async throws {
        var message = Ordercell_Cell_V1_ImportKeysRequest()
        message.entries = entries.map(Ordercell_Cell_V1_KeyEntry.init)
        let reply = try await call { [message] in try await $0.importKeys(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
    }

    public func deleteFrozenMerchantKeys(_ keys: [MerchantKey]) async throws -> Int {
        var message = Ordercell_Cell_V1_DropKeysRequest()
        message.keys = keys.map { Ordercell_Cell_V1_MerchantKeyRef($0) }
        let reply = try await call { [message] in try await $0.dropKeys(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return Int(reply.dropped)
    }

    public func notifierStatus(_ status: NotificationStatus?, after: String?, limit: Int) async throws -> NotifierStatusPage {
        var message = Ordercell_Cell_V1_NotifierStatusRequest()
        message.status = status?.rawValue ?? ""
        message.afterEventID = after ?? ""
        message.limit = Int32(clamping: limit)
        let reply = try await call { [message] in try await $0.notifierStatus(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.domain()
    }

    public func redeliverNotifications(_ eventIDs: [String]?, by operator: String) async throws -> Int {
        var message = Ordercell_Cell_V1_RedeliverRequest()
        message.eventIds = eventIDs ?? []
        message.requestedBy = `operator`
        let reply = try await call { [message] in try await $0.redeliverNotifications(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return Int(reply.redelivered)
    }

    /// The cell's event feed after `position` (docs/events.md): up to `limit` events in commit order.
    public func eventFeed(after position: EventFeedPosition, limit: Int) async throws -> [FeedEvent] {
        var message = Ordercell_Cell_V1_FeedRequest()
        message.afterTransaction = position.transaction
        message.afterEvent = position.event
        message.limit = Int32(clamping: limit)
        let reply = try await call { [message] in try await $0.readFeed(message, timeout: $1) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.events.map { try $0.domain() }
    }

    /// Sets the drill fault on every service instance of the cell (`calls`: each instance counts its own),
    /// naming the operator who asked (the cell records it).
    public func setFault(_ fault: CellFault, calls: Int? = nil, by operator: String) async throws {
        var message = RPCFault(fault)
        message.calls = Int32(clamping: calls ?? 0)
        message.operator = `operator`
        for instance in instances { _ = try await instance.setFault(message, timeout: share) }
    }

    /// The drill fault of the first instance that answers.
    public func fault() async throws -> CellFault {
        let reply = try await call { try await $0.getFault(timeout: $1) }
        return try reply.domain()
    }
}

/// Cell RPC clients of every cell of the routing table, made on first use and
/// remade when a cell's endpoints change. Also the drill control of a cluster.
public final class CellServiceClients: CellClientProvider, CellDrillControl {
    private let clients = Mutex<[CellID: CellServiceClient]>([:])
    private let routes = Mutex<[CellID: CellRoute]>([:])
    private let tls: CellClientTLS
    private let timeout: Duration
    private let logger: Logger

    public init(tls: CellClientTLS, timeout: Duration, logger: Logger) {
        self.tls = tls
        self.timeout = timeout
        self.logger = logger
    }

    public func client(for route: CellRoute) -> (any CellClient)? {
        // The hot path is one lock and an endpoint comparison; the rest only when a cell is new or moved.
        let (client, created, replaced) = clients.withLock { clients -> (CellServiceClient, Bool, CellServiceClient?) in
            if let existing = clients[route.id], existing.endpoints == route.endpoints { return (existing, false, nil) }
            let made = CellServiceClient(cell: route.id, endpoints: route.endpoints, tls: tls, timeout: timeout, logger: logger)
            let old = clients[route.id]
            clients[route.id] = made
            return (made, true, old)
        }
        if created {
            routes.withLock { $0[route.id] = route }
            logger.info("cell client ready", metadata: ["cell": "\(route.id)", "endpoints": "\(route.endpoints.map(\.description))"])
        }
        replaced?.shutdown()
        return client
    }

    private func existing(_ cell: CellID) throws -> CellServiceClient {
        guard let route = routes.withLock({ $0[cell] }), let client = client(for: route) as? CellServiceClient else {
            throw OrderError(.notFound, "cell \(cell) has not been reached by this proxy yet")
        }
        return client
    }

    public func setFault(_ fault: CellFault, calls: Int?, on cell: CellID, by operator: String) async throws {
        try await existing(cell).setFault(fault, calls: calls, by: `operator`)
    }

    public func fault(of cell: CellID) async throws -> CellFault {
        try await existing(cell).fault()
    }

    /// Makes sure every cell of `table` has a client (connections start at once).
    public func prepare(for table: RoutingTable) {
        for route in table.sortedCells where !route.endpoints.isEmpty { _ = client(for: route) }
    }

    public func shutdown() {
        for client in clients.withLock({ Array($0.values) }) { client.shutdown() }
    }
}

/// The clients' connections live as long as the process's service group:
/// on graceful shutdown (or cancellation) each closes once its calls under
/// way are answered or expired, and ``run()`` returns when all have. Put them first in the group, so that they
/// are shut down last, after the servers whose requests use them.
extension CellServiceClients: Service {
    /// Returns once every connection has closed, after graceful shutdown began.
    public func run() async {
        try? await gracefulShutdown()
        await withDiscardingTaskGroup { group in
            for client in clients.withLock({ Array($0.values) }) { group.addTask { await client.shutdownAndWait() } }
        }
    }
}
