import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// The load generator's HTTP/1.1 client: keep-alive connections, one
/// request at a time on each, idle ones reused.
///
/// A general-purpose client (connection-pool state machines, redirects,
/// streaming bodies, TLS) spends more CPU per request than the system it
/// measures can spare on a shared machine; this one does only what a
/// load generator needs, so that more of the machine's CPU goes to the
/// system under test.
public final class BenchHTTPClient: Sendable {
    /// The answer to a request: status and the whole body.
    public struct Response: Sendable {
        public var status: HTTPResponseStatus
        public var body: ByteBuffer
        /// Whether the server keeps the connection open for the next request.
        public var keepAlive: Bool
    }

    /// The connection closed before the response was complete.
    public struct ConnectionClosed: Error {}

    /// No complete response within the request's deadline.
    public struct TimedOut: Error {}

    private let group: any EventLoopGroup
    private let idle = Mutex<[PoolKey: [any Channel]]>([:])
    /// TLS of every connection (a cluster's proxies speak HTTPS); nil: plaintext.
    private let tls: NIOSSLContext?

    /// Whether it speaks HTTPS (to `https://` URLs).
    public var usesTLS: Bool { tls != nil }

    /// Idle connections are kept per endpoint, and per event loop when a caller asks for one.
    private struct PoolKey: Hashable {
        var host: String
        var port: Int
        var eventLoop: ObjectIdentifier?
    }

    /// - Parameter tls: HTTPS with this client context (its trust roots: the deployment's CA); nil: plaintext.
    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, tls: NIOSSLContext? = nil) {
        self.group = group
        self.tls = tls
    }

    /// A client context for HTTPS to servers whose certificates chain to `caFile` (nil: the system's CAs).
    public static func tlsContext(trusting caFile: String?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caFile { configuration.trustRoots = .file(caFile) }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Sends one request to `host:port` and waits for the whole response.
    public func send(
        _ method: HTTPMethod, host: String, port: Int, path: String, json body: String?, timeout: Duration = .seconds(30)
    ) async throws -> Response {
        try await send(method, host: host, port: port, path: path, json: body, timeout: timeout, on: nil).get()
    }

    /// Sends one request to `host:port`; the future completes with the whole response.
    ///
    /// With `eventLoop`, the request goes over a connection of that event
    /// loop (opened there if none is idle), so a caller running on it pays
    /// no thread hop for the request or its answer.
    public func send(
        _ method: HTTPMethod, host: String, port: Int, path: String, json body: String?, timeout: Duration = .seconds(30),
        authorization: String? = nil, on eventLoop: (any EventLoop)?
    ) -> EventLoopFuture<Response> {
        let key = PoolKey(host: host, port: port, eventLoop: eventLoop.map { ObjectIdentifier($0) })
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "host", value: "\(host):\(port)")
        if let authorization { head.headers.add(name: "authorization", value: authorization) }
        let payload = body.map { ByteBuffer(string: $0) }
        if let payload {
            head.headers.add(name: "content-type", value: "application/json")
            head.headers.add(name: "content-length", value: String(payload.readableBytes))
        } else if method == .POST || method == .PUT {
            head.headers.add(name: "content-length", value: "0")
        }
        let request = head
        let connected: EventLoopFuture<any Channel>
        if let reused = idle.withLock({ $0[key]?.popLast() }), reused.isActive {
            connected = reused.eventLoop.makeSucceededFuture(reused)
        } else {
            connected = connect(host: host, port: port, on: eventLoop ?? group.next())
        }
        return connected.flatMap { channel in
            // Everything about the request happens on the connection's event loop, so
            // exactly one of answer, deadline and close completes it.
            let promise = channel.eventLoop.makePromise(of: Response.self)
            if let collector = try? channel.pipeline.syncOperations.handler(type: ResponseCollector.self) {
                collector.send(ResponseCollector.Request(head: request, body: payload, timeout: TimeAmount(timeout), promise: promise))
            } else {
                promise.fail(ConnectionClosed())
            }
            return promise.futureResult.always { result in
                if case .success(let response) = result, response.keepAlive, channel.isActive {
                    self.idle.withLock { $0[key, default: []].append(channel) }
                } else {
                    channel.close(promise: nil)
                }
            }
        }
    }

    /// Closes every idle connection.
    public func shutdown() {
        for connections in idle.withLock({ state in defer { state = [:] }; return state.values }) {
            for channel in connections { channel.close(promise: nil) }
        }
    }

    private func connect(host: String, port: Int, on eventLoop: any EventLoop) -> EventLoopFuture<any Channel> {
        let tls = self.tls
        return ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // An IP address goes in no SNI; the certificate is then checked against the peer's address.
                        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: isAddress ? nil : host))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector())
                }
            }
            .connect(host: host, port: port)
    }
}

/// Writes one request and collects its response (head and body) into the
/// request's promise. Used on its event loop only.
final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    struct Request: Sendable {
        var head: HTTPRequestHead
        var body: ByteBuffer?
        var timeout: TimeAmount
        var promise: EventLoopPromise<BenchHTTPClient.Response>
    }

    private var context: ChannelHandlerContext?
    private var pending: (promise: EventLoopPromise<BenchHTTPClient.Response>, timer: Scheduled<Void>)?
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func send(_ request: Request) {
        guard let context, context.channel.isActive, pending == nil else {
            request.promise.fail(BenchHTTPClient.ConnectionClosed())
            return
        }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let timer = context.eventLoop.scheduleTask(in: request.timeout) { bound.value.fail(BenchHTTPClient.TimedOut()) }
        pending = (request.promise, timer)
        head = nil
        body.clear()
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if let payload = request.body { context.write(wrapOutboundOut(.body(.byteBuffer(payload))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    private func fail(_ error: any Error) {
        guard let pending else { return }
        self.pending = nil
        pending.timer.cancel()
        pending.promise.fail(error)
        context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body(var part): body.writeBuffer(&part)
        case .end:
            guard let pending, let head else { return }
            self.pending = nil
            pending.timer.cancel()
            pending.promise.succeed(BenchHTTPClient.Response(status: head.status, body: body, keepAlive: head.isKeepAlive))
            body = ByteBuffer()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(BenchHTTPClient.ConnectionClosed())
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }
}
