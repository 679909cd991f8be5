import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The HTTP/1.1 server of the order API: Hummingbird's server (binding,
/// accepting, graceful shutdown) with the order API's connection handling
/// plugged in as its child channel (``OrderHTTPChannel``), which hands each
/// complete request to a Hummingbird router and writes its response.
///
/// Hummingbird's own HTTP/1 child channel bridges every connection into an
/// async sequence and gives every request a task-local logger; on two cores
/// that machinery was 0.17–0.22 ms of a 0.4–0.5 ms round trip at p50 and the
/// proxy's largest CPU cost (docs/performance.md). The routes, middleware
/// and handlers are the router's, unchanged; only the connection's reading
/// and writing differ.
///
/// Keep-alive and pipelined requests are answered in order (NIO's pipelining
/// assistance); after a response that says `Connection: close` nothing more
/// is read. A request body over ``maximumBodyBytes`` is refused with 413
/// (the rest of it read and dropped, so the client sees the answer) and the
/// connection closed; a connection that sends nothing for ``idleTimeout``
/// (between requests or in the middle of one) is closed. On graceful
/// shutdown Hummingbird stops accepting and tells every connection to quiesce:
/// each lets its request under way finish and closes once it has answered;
/// on cancellation everything closes at once.
public struct OrderHTTPServer<Responder: HTTPResponder>: Service where Responder.Context == OrderRequestContext {
    public var host: String
    public var port: Int
    public var serverName: String
    public var maximumBodyBytes: Int
    public var idleTimeout: TimeAmount
    public var tls: HTTPServerTLS
    private let responder: Responder
    private let logger: Logger
    private let onServerRunning: @Sendable (Int) async -> Void
    private let onGracefulShutdown: @Sendable () -> Void

    /// - Parameters:
    ///   - tls: chosen explicitly (``HTTPServerTLS/disabled`` on loopback,
    ///     or behind a load balancer that terminates TLS).
    ///   - onGracefulShutdown: called when a graceful shutdown begins, while
    ///     the server drains its connections: the place to answer requests
    ///     that would otherwise wait (long polls).
    public init(
        host: String, port: Int, responder: Responder, tls: HTTPServerTLS, serverName: String = "OrderCell",
        maximumBodyBytes: Int = 4 * HTTPBodies.maximumBodyBytes,
        idleTimeout: TimeAmount = .seconds(75), logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        onGracefulShutdown: @escaping @Sendable () -> Void = {}
    ) {
        self.host = host
        self.port = port
        self.responder = responder
        self.tls = tls
        self.serverName = serverName
        self.maximumBodyBytes = maximumBodyBytes
        self.idleTimeout = idleTimeout
        self.logger = logger
        self.onServerRunning = onServerRunning
        self.onGracefulShutdown = onGracefulShutdown
    }

    public func run() async throws {
        let channel = OrderHTTPChannel(
            settings: .init(responder: responder, serverName: serverName, maximumBodyBytes: maximumBodyBytes, logger: logger, dates: HTTPDateCache()),
            idleTimeout: idleTimeout, tls: tls
        )
        let logger = self.logger
        let onServerRunning = self.onServerRunning
        let server = channel.server(
            // Bursts of new connections (a client pool growing under a stall) must not overflow
            // the accept queue: a dropped SYN costs its client a 1 s retransmission.
            configuration: ServerConfiguration(address: .hostname(host, port: port), serverName: serverName, backlog: 4096, reuseAddress: true),
            onServerRunning: { channel in
                logger.info(
                    "order API listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "tls": "\(tls.isEnabled)"]
                )
                await onServerRunning(channel.localAddress?.port ?? 0)
            },
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: logger
        )
        try await withGracefulShutdownHandler {
            try await server.run()
        } onGracefulShutdown: { [onGracefulShutdown] in
            onGracefulShutdown()
        }
    }
}
