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

    /// Answers a request for a path that is served, but not with its
    /// method — any method, `QUERY` or `TRACE` alike — with `405
    /// method_not_allowed` and an `Allow` header naming those that are (RFC
    /// 9110 §15.5.6), instead of the router's 404. Call it once, after the
    /// last route: Hummingbird fixes a route's middleware when the route is
    /// added, so a middleware added then wraps only what no route matched
    /// (and would wrap, wrongly, a route added after it). `HEAD` is served
    /// wherever `GET` is (the router's `autoGenerateHeadEndpoints`).
    public func refuseOtherMethods() {
        router.add(middleware: MethodNotAllowedMiddleware(routes: routes))
    }
}

/// What ``RouteRegistrar/refuseOtherMethods()`` puts in front of the router's 404.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Each served path's segments (`nil` for a `{parameter}`) and its methods, in the order registered.
    let templates: [(segments: [Substring?], methods: [String])]

    init(routes: [APIRoute]) {
        var templates: [(segments: [Substring?], methods: [String])] = []
        for route in routes {
            let segments = route.path.split(separator: "/").map { $0.hasPrefix("{") ? nil : $0 }
            let methods = route.method == "GET" ? ["GET", "HEAD"] : [route.method]
            if let index = templates.firstIndex(where: { $0.segments == segments }) {
                for method in methods where !templates[index].methods.contains(method) { templates[index].methods.append(method) }
            } else {
                templates.append((segments, methods))
            }
        }
        self.templates = templates
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path.split(separator: "/")
        let allowed = templates.filter { template in
            template.segments.count == path.count && zip(template.segments, path).allSatisfy { $0 == nil || $0 == $1 }
        }.flatMap(\.methods)
        guard !allowed.isEmpty, !allowed.contains(request.method.rawValue) else { return try await next(request, context) }
        let allow = allowed.joined(separator: ", ")
        var response = Problem.response(
            OrderError(.methodNotAllowed, "\(request.method.rawValue.prefix(16)) is not served on \(request.uri.path.prefix(128)); it serves \(allow)")
        )
        response.headers[.allow] = allow
        return response
    }
}

/// The routes a registrar and its groups recorded.
final class RecordedRoutes: Sendable {
    let routes = Mutex<[APIRoute]>([])
}
