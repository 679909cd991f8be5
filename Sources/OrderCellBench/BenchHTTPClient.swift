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
    }

    /// The connection closed before the response was complete.
    public struct ConnectionClosed: Error {}

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
        let promise = connection.channel.eventLoop.makePromise(of: Response.self)
        let deadline = connection.channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { [channel = connection.channel] in
            channel.close(promise: nil)
        }
        connection.channel.writeAndFlush(ResponseCollector.Request(head: head, body: payload, promise: promise), promise: nil)
        do {
            let response = try await promise.futureResult.get()
            deadline.cancel()
            if connection.channel.isActive { idle.withLock { $0[key, default: []].append(connection) } }
            return response
        } catch {
            deadline.cancel()
            connection.channel.close(promise: nil)
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

/// Writes one request and collects its response (head and body) into the request's promise.
final class ResponseCollector: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Request
    typealias OutboundOut = HTTPClientRequestPart

    struct Request: Sendable {
        var head: HTTPRequestHead
        var body: ByteBuffer?
        var promise: EventLoopPromise<BenchHTTPClient.Response>
    }

    private var pending: EventLoopPromise<BenchHTTPClient.Response>?
    private var status: HTTPResponseStatus = .ok
    private var body = ByteBuffer()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        guard pending == nil else {
            request.promise.fail(ChannelError.inappropriateOperationForState)
            return
        }
        pending = request.promise
        body.clear()
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if let payload = request.body { context.write(wrapOutboundOut(.body(.byteBuffer(payload))), promise: nil) }
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): status = head.status
        case .body(var part): body.writeBuffer(&part)
        case .end:
            let promise = pending
            pending = nil
            promise?.succeed(BenchHTTPClient.Response(status: status, body: body))
            body = ByteBuffer()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        pending?.fail(BenchHTTPClient.ConnectionClosed())
        pending = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pending?.fail(error)
        pending = nil
        context.close(promise: nil)
    }
}
