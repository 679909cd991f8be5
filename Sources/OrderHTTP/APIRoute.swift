import Hummingbird

/// One endpoint of the HTTP API: what the OpenAPI document must describe.
public struct APIRoute: Hashable, Sendable, CustomStringConvertible {
    public var method: String
    public var path: String

    public var description: String { "\(method) \(path)" }

    public init(method: String, path: String) {
        self.method = method
        self.path = path
    }
}

/// Registers routes on a router and records them, so tests can compare
/// what is served with what the OpenAPI document says.
public struct RouteRegistrar<Context: RequestContext> {
    public let router: Router<Context>
    public private(set) var routes: [APIRoute] = []

    public init(router: Router<Context>) { self.router = router }

    public mutating func on(
        _ method: HTTPRequest.Method, _ path: String,
        _ handler: @escaping @Sendable (Request, Context) async throws -> Response
    ) {
        router.on(RouterPath(path), method: method, use: handler)
        routes.append(APIRoute(method: method.rawValue, path: path))
    }
}
