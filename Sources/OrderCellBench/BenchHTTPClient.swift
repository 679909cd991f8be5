import NIOCore
import NIOHTTP1
import NIOPosix
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
    private let idle = Mutex<[String: [Connection]]>([:])

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.group = group
    }

    /// Sends one request to `host:port` and waits for the whole response.
    public func send(
        _ method: HTTPMethod, host: String, port: Int, path: String, json body: String?, timeout: Duration = .seconds(30)
    ) async throws -> Response {
        let key = "\(host):\(port)"
        let connection: Connection
        if let reused = idle.withLock({ $0[key]?.popLast() }), reused.channel.isActive {
            connection = reused
        } else {
            connection = try await connect(host: host, port: port)
        }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "host", value: key)
        var payload: ByteBuffer?
        if let body {
            let buffer = ByteBuffer(string: body)
            head.headers.add(name: "content-type", value: "application/json")
            head.headers.add(name: "content-length", value: String(buffer.readableBytes))
            payload = buffer
        } else if method == .POST || method == .PUT {
            head.headers.add(name: "content-length", value: "0")
        }
        let channel = connection.channel
        let promise = channel.eventLoop.makePromise(of: Response.self)
        let request = ResponseCollector.Request(head: head, body: payload, timeout: TimeAmount(timeout), promise: promise)
        // Everything about the request happens on the connection's event loop, so
        // exactly one of answer, deadline and close completes it.
        channel.eventLoop.execute {
            guard let collector = try? channel.pipeline.syncOperations.handler(type: ResponseCollector.self) else {
                request.promise.fail(ConnectionClosed())
                return
            }
            collector.send(request)
        }
        do {
            let response = try await promise.futureResult.get()
            if response.keepAlive, channel.isActive {
                idle.withLock { $0[key, default: []].append(connection) }
            } else {
                channel.close(promise: nil)
            }
            return response
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }

    /// Closes every idle connection.
    public func shutdown() {
        for connections in idle.withLock({ state in defer { state = [:] }; return state.values }) {
            for connection in connections { connection.channel.close(promise: nil) }
        }
    }

    private func connect(host: String, port: Int) async throws -> Connection {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector())
                }
            }
            .connect(host: host, port: port).get()
        return Connection(channel: channel)
    }

    struct Connection: Sendable {
        let channel: any Channel
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
