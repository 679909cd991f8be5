import Hummingbird
import OrderModel
import Synchronization

/// Limits failed operator authentication per source, on every endpoint
/// that takes a bearer token (the operator API, the control plane's routing
/// feed): past the limit a request whose token is refused (`401`) is
/// answered `429` with `Retry-After` instead, so that guessing a token
/// learns nothing more. A valid token is always served — an operator
/// behind the same address as the guesser is not locked out — and a token
/// refused for its role (`403`) is not a failure. The public API's own
/// signatures are limited by ``RequestAuthenticator``.
public struct OperatorAuthenticationLimit: RouterMiddleware {
    public typealias Context = OrderRequestContext

    /// The limiter, shared by every request of the server.
    final class State: Sendable {
        let limiter = Mutex(AuthenticationFailureLimiter())
    }

    private let state = State()
    private let clock: @Sendable () -> Timestamp

    public init(clock: @escaping @Sendable () -> Timestamp) {
        self.clock = clock
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let refused as OperatorTokens.Refused {
            let now = Double(clock().millisecondsSinceEpoch) / 1000
            let verdict = state.limiter.withLock {
                $0.recordFailure(source: AuthenticationFailureLimiter.Source(context.remoteAddress), keyID: nil, now: now)
            }
            if let wait = verdict.retryAfter {
                throw OrderError(.rateLimited, "too many failed operator authentications; try again in \(wait) s", retryAfterSeconds: wait)
            }
            throw refused
        }
    }
}
