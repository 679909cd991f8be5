import CellRouting
import OrderHTTP
import Hummingbird
import Logging
import OrderModel

/// The public HTTP API of a proxy (`/v1/orders…`), its health endpoints and
/// the operator endpoints (`/admin/…`, guarded by a bearer token).
public struct ProxyHTTPAPI: Sendable {
    public let proxy: OrderProxy
    public let drills: (any CellDrillControl)?
    /// Where operator routing changes (blacklist) are made: the control plane.
    public let routingChanges: any RoutingChanges
    /// Bearer tokens of the operator endpoints (none: they are disabled).
    public let tokens: OperatorTokens
    public let routingStatus: RoutingStatus
    /// Checks the signed requests of the public API and says who made them
    /// (docs/security.md); nil: authentication is off (`ordercell dev`
    /// without `--auth`), and every caller may do everything.
    public let authenticator: RequestAuthenticator?
    public let isReady: @Sendable () -> Bool
    private let clock: @Sendable () -> Timestamp
    private let logger: Logger

    public init(
        proxy: OrderProxy, drills: (any CellDrillControl)?, routingChanges: any RoutingChanges, tokens: OperatorTokens,
        routingStatus: RoutingStatus = RoutingStatus(source: .inProcess), authenticator: RequestAuthenticator? = nil,
        clock: @escaping @Sendable () -> Timestamp, isReady: @escaping @Sendable () -> Bool = { true },
        logger: Logger = Logger(label: "ordercell.http")
    ) {
        self.proxy = proxy
        self.authenticator = authenticator
        self.drills = drills
        self.routingChanges = routingChanges
        self.tokens = tokens
        self.routingStatus = routingStatus
        self.clock = clock
        self.isReady = isReady
        self.logger = logger
    }

    /// A router serving the whole API.
    public func buildRouter(adding more: (inout RouteRegistrar<OrderRequestContext>) -> Void = { _ in }) -> Router<OrderRequestContext> {
        buildRouterAndRoutes(adding: more).router
    }

    /// The router and the list of routes it serves; `more` adds routes of
    /// other components served on the same port (the embedded control plane).
    public func buildRouterAndRoutes(
        adding more: (inout RouteRegistrar<OrderRequestContext>) -> Void = { _ in }
    ) -> (router: Router<OrderRequestContext>, routes: [APIRoute]) {
        // HEAD is answered wherever GET is, with the GET answer's head (RFC 9110 §9.1).
        let router = Router(context: OrderRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: ProblemMiddleware(logger: logger))
        router.add(middleware: OperatorAuthenticationLimit(clock: clock))
        var registrar = RouteRegistrar(router: router)
        addOrderRoutes(&registrar)
        addHealthRoutes(&registrar)
        AdminHTTPAPI(
            proxy: proxy, drills: drills, routingChanges: routingChanges, tokens: tokens, routingStatus: routingStatus, clock: clock
        ).addRoutes(&registrar)
        more(&registrar)
        registrar.refuseOtherMethods()
        return (router, registrar.routes)
    }

    // MARK: - Orders

    private func addOrderRoutes(_ routes: inout RouteRegistrar<OrderRequestContext>) {
        let proxy = self.proxy
        let authenticator = self.authenticator
        let clock = self.clock
        /// Who made `request`, if they may make `operation` at all, and its body (read once: the signature covers it).
        @Sendable func authenticate(_ request: Request, _ context: OrderRequestContext, _ operation: OrderOperation) async throws -> (Caller, ByteBuffer) {
            let body = try await request.body.collect(upTo: HTTPBodies.maximumBodyBytes)
            guard let authenticator else { return (.unauthenticated, body) }
            let caller = try authenticator.authenticate(
                method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "",
                authorization: request.headers[.authorization], body: body, source: context.remoteAddress, now: clock()
            )
            try caller.check(operation)
            return (caller, body)
        }
        routes.on(.post, "/v1/orders") { request, context in
            let (caller, body) = try await authenticate(request, context, .create)
            let order = try HTTPBodies.decode(CreateOrderBody.self, from: body).validated()
            try caller.checkNames(merchant: order.merchantID)
            guard !ProbeMerchant.isProbe(order.merchantID) else {
                throw OrderError.invalidRequest("merchant_id \(ProbeMerchant.id) is reserved for the health checker's synthetic orders")
            }
            let result = try await proxy.create(order)
            return OrderJSON.response(
                result.order, status: result.created ? .created : .ok, location: "/v1/orders/\(result.order.id)"
            )
        }
        // The merchant's own number: `GET /v1/orders?merchant_id=M&out_trade_no=X`.
        routes.on(.get, "/v1/orders") { request, context in
            let (caller, _) = try await authenticate(request, context, .lookup)
            let query = request.uri.queryParameters
            guard let merchantID = query.get("merchant_id"), let outTradeNo = query.get("out_trade_no") else {
                throw OrderError.invalidRequest("give merchant_id and out_trade_no to find an order by the merchant's number")
            }
            try RequestLimits.checkIdentifier(merchantID, field: "merchant_id", length: RequestLimits.merchantIDLength)
            try RequestLimits.checkIdentifier(outTradeNo, field: "out_trade_no", length: RequestLimits.outTradeNoLength)
            try caller.checkNames(merchant: merchantID)
            guard !ProbeMerchant.isProbe(merchantID) else {
                throw OrderError.invalidRequest("merchant_id \(ProbeMerchant.id) is reserved for the health checker's synthetic orders")
            }
            let consistency = try Self.consistency(request)
            return OrderJSON.response(try await proxy.order(MerchantKey(merchantID: merchantID, outTradeNo: outTradeNo), consistency: consistency))
        }
        routes.on(.get, "/v1/orders/{order_id}") { request, context in
            let (caller, _) = try await authenticate(request, context, .read)
            let id = try Self.orderID(context)
            let consistency = try Self.consistency(request)
            let order = try await proxy.order(id, consistency: consistency)
            guard caller.mayActFor(merchant: order.merchantID) else { throw Self.notFound(id) }
            return OrderJSON.response(order)
        }
        routes.on(.post, "/v1/orders/{order_id}/pay") { request, context in
            let (_, body) = try await authenticate(request, context, .pay)
            let id = try Self.orderID(context)
            let pay = try HTTPBodies.decode(PayBody.self, from: body)
            let command = try OrderCommand.validatedPay(paymentID: pay.paymentID, amount: pay.amount)
            return OrderJSON.response(try await proxy.apply(command, to: id).order)
        }
        routes.on(.post, "/v1/orders/{order_id}/close") { request, context in
            let (caller, _) = try await authenticate(request, context, .close)
            let id = try Self.orderID(context)
            // The cell refuses another merchant's order as one it does not have (no oracle).
            return OrderJSON.response(try await proxy.apply(.close, to: id, ownedBy: caller.ownMerchant).order)
        }
        routes.on(.post, "/v1/orders/{order_id}/refunds") { request, context in
            let (caller, body) = try await authenticate(request, context, .refund)
            let id = try Self.orderID(context)
            let refundBody = try HTTPBodies.decode(RefundBody.self, from: body)
            let command = try OrderCommand.validatedRefund(refundID: refundBody.refundID, amount: refundBody.amount, reason: refundBody.reason)
            let result = try await proxy.apply(command, to: id, ownedBy: caller.ownMerchant)
            guard let refund = result.refund else {
                throw OrderError(.internalError, "the cell answered a refund without the refund")
            }
            return try HTTPBodies.json(
                RefundResultView(refund: RefundView(refund), order: OrderView(result.order)),
                status: result.changed ? .created : .ok
            )
        }
        routes.on(.get, "/v1/orders/{order_id}/refunds") { request, context in
            let (caller, _) = try await authenticate(request, context, .listRefunds)
            let id = try Self.orderID(context)
            return try HTTPBodies.json(RefundListView(refunds: try await proxy.refunds(of: id, ownedBy: caller.ownMerchant).map(RefundView.init)))
        }
        routes.on(.get, "/v1/orders/{order_id}/events") { request, context in
            let (caller, _) = try await authenticate(request, context, .listEvents)
            let id = try Self.orderID(context)
            let events = try await proxy.events(of: id, ownedBy: caller.ownMerchant)
            return try HTTPBodies.json(EventListView(orderID: id.description, events: events.map(EventView.init)))
        }
    }

    /// What a merchant is told of another merchant's order: exactly what the cell says of one that does not exist.
    static func notFound(_ id: OrderID) -> OrderError { OrderError(.orderNotFound, "no order \(id)") }

    static func orderID(_ context: OrderRequestContext) throws(OrderError) -> OrderID {
        let text = context.parameters.get("order_id") ?? ""
        do {
            return try OrderID(parsing: text)
        } catch {
            throw OrderError(.invalidOrderID, error.description)
        }
    }

    static func consistency(_ request: Request) throws(OrderError) -> ReadConsistency {
        guard let value = request.uri.queryParameters.get("consistency") else { return .strong }
        guard let consistency = ReadConsistency(rawValue: value) else {
            throw OrderError.invalidRequest("consistency must be strong or eventual, got '\(value.prefix(16))'")
        }
        return consistency
    }

    // MARK: - Health

    private func addHealthRoutes(_ routes: inout RouteRegistrar<OrderRequestContext>) {
        let isReady = self.isReady
        let proxy = self.proxy
        routes.on(.get, "/healthz") { _, _ in
            try HTTPBodies.json(["status": "ok"])
        }
        routes.on(.get, "/readyz") { _, _ in
            let table = proxy.routingTable
            guard isReady(), !table.cells.isEmpty else {
                throw OrderError(.noCellAvailable, "the proxy is not ready to take orders")
            }
            return try HTTPBodies.json(ReadinessView(status: "ready", routingVersion: table.version, cells: table.cells.count))
        }
    }
}

struct ReadinessView: Encodable {
    var status: String
    var routingVersion: UInt64
    var cells: Int
    enum CodingKeys: String, CodingKey { case status, routingVersion = "routing_version", cells }
}
