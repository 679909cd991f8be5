import Hummingbird
import OrderModel
import Synchronization

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
/// what is served with what the OpenAPI document says. A ``group(_:)``
/// registers under a path prefix through Hummingbird's `RouterGroup` and
/// records into the same list.
public struct RouteRegistrar<Context: RequestContext> {
    public let router: Router<Context>
    /// The group routes are added to (the router itself at the top), and its path.
    private let methods: any RouterMethods<Context>
    private let prefix: String
    private let recorded: RecordedRoutes

    /// The routes registered through this registrar and its groups.
    public var routes: [APIRoute] { recorded.routes.withLock { $0 } }

    public init(router: Router<Context>) {
        self.router = router
        self.methods = router
        self.prefix = ""
        self.recorded = RecordedRoutes()
    }

    private init(router: Router<Context>, methods: any RouterMethods<Context>, prefix: String, recorded: RecordedRoutes) {
        self.router = router
        self.methods = methods
        self.prefix = prefix
        self.recorded = recorded
    }

    /// Routes under `path` (e.g. `/admin`), registered on a `RouterGroup`.
    public func group(_ path: String) -> RouteRegistrar {
        guard !path.isEmpty else { return self }
        return RouteRegistrar(router: router, methods: methods.group(RouterPath(path)), prefix: prefix + path, recorded: recorded)
    }

    /// Registers `handler` for `method` at `path` (relative to this registrar's group).
    public mutating func on(
        _ method: HTTPRequest.Method, _ path: String,
        _ handler: @escaping @Sendable (Request, Context) async throws -> Response
    ) {
        methods.on(RouterPath(path), method: method, use: handler)
        recorded.routes.withLock { $0.append(APIRoute(method: method.rawValue, path: prefix + path)) }
    }

    /// Answers every other method on the paths registered so far with
    /// `405 method_not_allowed` and an `Allow` header naming the ones served
    /// (RFC 9110 §15.5.6), instead of the router's 404: the path exists.
    /// Call it once, after the last route.
    public func refuseOtherMethods() {
        let methods: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options, .trace]
        var served: [String: Set<String>] = [:]
        for route in routes { served[route.path, default: []].insert(route.method) }
        for (path, allowed) in served {
            let allow = methods.map(\.rawValue).filter(allowed.contains).joined(separator: ", ")
            for method in methods where !allowed.contains(method.rawValue) {
                // HEAD too: the server writes every answer with its body, so it serves no HEAD.
                router.on(RouterPath(path), method: method) { request, _ in
                    var response = Problem.response(
                        OrderError(.methodNotAllowed, "\(request.method.rawValue) is not served on \(path); it serves \(allow)")
                    )
                    response.headers[.allow] = allow
                    return response
                }
            }
        }
    }
}

/// The routes a registrar and its groups recorded.
final class RecordedRoutes: Sendable {
    let routes = Mutex<[APIRoute]>([])
}
