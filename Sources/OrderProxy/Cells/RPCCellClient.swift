import CellRPC
import CellRouting
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import OrderModel
import Synchronization

/// The proxy's client of one cell over gRPC, spread over the cell's
/// service instances: calls go round-robin, and a call that fails on one
/// instance is tried once on each other (every cell call is idempotent).
/// Connections are long-lived and multiplexed (HTTP/2).
public final class GRPCCellClient: CellClient {
    public let cell: CellID
    public let endpoints: [String]
    private let instances: [Instance]
    private let next = Atomic<Int>(0)
    private let timeout: Duration

    /// Every attempt carries a gRPC deadline (enforced by the transport's
    /// timers), so the proxy adds none of its own.
    public var enforcesOwnDeadline: Bool { true }

    struct Instance: Sendable {
        let endpoint: String
        let client: GRPCClient<HTTP2ClientTransport.Posix>
        let stub: Ordercell_Cell_V1_Cell.Client<HTTP2ClientTransport.Posix>
    }

    /// - Parameter endpoints: `host:port` of each cell service of the cell.
    public init(cell: CellID, endpoints: [String], timeout: Duration) throws {
        self.cell = cell
        self.endpoints = endpoints
        self.timeout = timeout
        self.instances = try endpoints.map { endpoint in
            guard let colon = endpoint.lastIndex(of: ":"), let port = Int(endpoint[endpoint.index(after: colon)...]) else {
                throw OrderError.invalidRequest("cell endpoint \(endpoint) is not host:port")
            }
            let host = String(endpoint[..<colon])
            var config = HTTP2ClientTransport.Posix.Config.defaults
            config.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 1.6, jitter: 0.2)
            config.connection.maxIdleTime = .seconds(300)
            let transport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: host, port: port), transportSecurity: .plaintext, config: config
            )
            let client = GRPCClient(transport: transport)
            return Instance(endpoint: endpoint, client: client, stub: Ordercell_Cell_V1_Cell.Client(wrapping: client))
        }
    }

    /// Runs the connections until cancelled or shut down; the proxy runs this in the background.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for instance in instances {
                group.addTask { try? await instance.client.runConnections() }
            }
        }
    }

    public func shutdown() {
        for instance in instances { instance.client.beginGracefulShutdown() }
    }

    /// Each instance gets an equal share of the call's deadline, and a call
    /// to an instance that is not connected fails at once instead of waiting
    /// for it, so the next instance is tried within the deadline.
    private var options: CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout / max(1, instances.count)
        options.waitForReady = false
        return options
    }

    /// Calls one instance after the other, starting with the next in turn.
    private func call<T: Sendable>(_ body: (Ordercell_Cell_V1_Cell.Client<HTTP2ClientTransport.Posix>) async throws -> T) async throws -> T {
        guard !instances.isEmpty else { throw RPCError(code: .unavailable, message: "cell \(cell) has no service endpoints") }
        let start = next.wrappingAdd(1, ordering: .relaxed).oldValue
        var lastError: (any Error)?
        for offset in 0..<instances.count {
            let instance = instances[(start &+ offset) % instances.count]
            do {
                return try await body(instance.stub)
            } catch let refusal as OrderError {
                throw refusal
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                lastError = error
            }
        }
        throw lastError!
    }

    public func create(_ request: CreateOrderRequest) async throws -> CreateOrderResult {
        let message = Ordercell_Cell_V1_CreateOrderRequest(request)
        let options = self.options
        let reply = try await call { try await $0.createOrder(message, options: options) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return CreateOrderResult(order: try reply.order.domain(), created: reply.created)
    }

    public func apply(_ command: OrderCommand, to id: OrderID) async throws -> OrderCommandResult {
        let message = Ordercell_Cell_V1_ApplyCommandRequest(command, orderID: id)
        let options = self.options
        let reply = try await call { try await $0.applyCommand(message, options: options) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return OrderCommandResult(
            order: try reply.order.domain(), refund: reply.hasRefund ? try reply.refund.domain() : nil, changed: reply.changed
        )
    }

    public func order(_ id: OrderID, consistency: ReadConsistency) async throws -> Order {
        var message = Ordercell_Cell_V1_GetOrderRequest()
        message.orderID = id.description
        message.eventual = consistency == .eventual
        let options = self.options
        let reply = try await call { [message] in try await $0.getOrder(message, options: options) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.order.domain()
    }

    public func refunds(of id: OrderID) async throws -> [Refund] {
        var message = Ordercell_Cell_V1_OrderRef()
        message.orderID = id.description
        let options = self.options
        let reply = try await call { [message] in try await $0.listRefunds(message, options: options) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.refunds.map { try $0.domain() }
    }

    public func events(of id: OrderID) async throws -> [OrderEvent] {
        var message = Ordercell_Cell_V1_OrderRef()
        message.orderID = id.description
        let options = self.options
        let reply = try await call { [message] in try await $0.listEvents(message, options: options) }
        if reply.hasRefusal { throw reply.refusal.orderError }
        return try reply.events.map { try $0.domain(orderID: id) }
    }

    /// Sets the drill fault on every service instance of the cell.
    public func setFault(_ fault: CellFault) async throws {
        let message = RPCFault(fault)
        let options = self.options
        for instance in instances { _ = try await instance.stub.setFault(message, options: options) }
    }

    /// The drill fault of the first instance that answers.
    public func fault() async throws -> CellFault {
        let options = self.options
        let reply = try await call { try await $0.getFault(Ordercell_Cell_V1_GetFaultRequest(), options: options) }
        return try reply.domain()
    }
}

/// gRPC clients of every cell of the routing table, made on first use and
/// remade when a cell's endpoints change. Also the drill control of a cluster.
public final class GRPCCellClients: CellClientProvider, CellDrillControl {
    private let clients = Mutex<[CellID: GRPCCellClient]>([:])
    private let routes = Mutex<[CellID: CellRoute]>([:])
    private let timeout: Duration
    private let logger: Logger

    public init(timeout: Duration, logger: Logger) {
        self.timeout = timeout
        self.logger = logger
    }

    public func client(for route: CellRoute) -> (any CellClient)? {
        // The hot path is one lock and an endpoint comparison; the rest only when a cell is new or moved.
        let (client, created, replaced) = clients.withLock { clients -> (GRPCCellClient?, Bool, GRPCCellClient?) in
            if let existing = clients[route.id], existing.endpoints == route.endpoints { return (existing, false, nil) }
            guard let made = try? GRPCCellClient(cell: route.id, endpoints: route.endpoints, timeout: timeout) else {
                return (nil, false, nil)
            }
            let old = clients[route.id]
            clients[route.id] = made
            return (made, true, old)
        }
        if created { routes.withLock { $0[route.id] = route } }
        if let client, created {
            Task { await client.run() }
            logger.info("cell client ready", metadata: ["cell": "\(route.id)", "endpoints": "\(route.endpoints)"])
        }
        replaced?.shutdown()
        return client
    }

    private func existing(_ cell: CellID) throws -> GRPCCellClient {
        guard let route = routes.withLock({ $0[cell] }), let client = client(for: route) as? GRPCCellClient else {
            throw OrderError(.notFound, "cell \(cell) has not been reached by this proxy yet")
        }
        return client
    }

    public func setFault(_ fault: CellFault, on cell: CellID) async throws {
        try await existing(cell).setFault(fault)
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
