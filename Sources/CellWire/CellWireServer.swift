import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// What a ``CellWireServer`` serves: the answer to one call.
public protocol CellWireResponder: Sendable {
    /// The payload of the answer to a call of `method`. A thrown error goes
    /// back to the caller as a failure frame carrying its description.
    ///
    /// - Parameter deadline: when the caller stops waiting (nil: it did not
    ///   say). Work that would change something must not start after it.
    func answer(method: UInt8, payload: ByteBuffer, deadline: ContinuousClock.Instant?, allocator: ByteBufferAllocator) async throws -> ByteBuffer
}

/// Serves the cell wire protocol on a TCP port: frames in, one task per
/// call, answers out in whatever order the calls finish.
///
/// At most ``maximumCallsPerConnection`` calls of a connection run at once;
/// calls read beyond that wait their turn. The server keeps reading while
/// fewer than ``maximumQueuedCallsPerConnection`` wait, so that a call's
/// deadline counts from (nearly) when it was sent, not from when a busy
/// server got round to reading it; beyond that it stops reading from the
/// connection until calls finish (the client's calls wait in its socket,
/// they are not refused). On graceful
/// shutdown it stops accepting, lets the calls under way finish (up to
/// `drainTimeout`), then closes every connection.
public final class CellWireServer: Service {
    public let host: String
    /// The port it listens on (the one the system chose when asked for 0).
    public let port: Int
    public let maximumCallsPerConnection: Int
    public let maximumQueuedCallsPerConnection: Int
    private let listener: any Channel
    private let connections: Connections
    private let drainTimeout: Duration
    private let logger: Logger

    private init(
        host: String, port: Int, listener: any Channel, connections: Connections, maximumCallsPerConnection: Int,
        maximumQueuedCallsPerConnection: Int, drainTimeout: Duration, logger: Logger
    ) {
        self.maximumQueuedCallsPerConnection = maximumQueuedCallsPerConnection
        self.host = host
        self.port = port
        self.listener = listener
        self.connections = connections
        self.maximumCallsPerConnection = maximumCallsPerConnection
        self.drainTimeout = drainTimeout
        self.logger = logger
    }

    /// Listens on `host:port` (0: any free port) and serves `responder` on every connection.
    public static func bind(
        host: String, port: Int, responder: some CellWireResponder, maximumCallsPerConnection: Int = 256,
        maximumQueuedCallsPerConnection: Int = 4096, drainTimeout: Duration = .seconds(10), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) async throws -> CellWireServer {
        let connections = Connections()
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    connections.opened(channel)
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(WireFrameDecoder(expectsPreamble: true)),
                        WireServerHandler(
                            responder: responder, limit: maximumCallsPerConnection, queueLimit: maximumQueuedCallsPerConnection,
                            connections: connections
                        ),
                    ])
                }
            }
            .bind(host: host, port: port).get()
        let bound = listener.localAddress?.port ?? port
        return CellWireServer(
            host: host, port: bound, listener: listener, connections: connections,
            maximumCallsPerConnection: maximumCallsPerConnection, maximumQueuedCallsPerConnection: maximumQueuedCallsPerConnection,
            drainTimeout: drainTimeout, logger: logger
        )
    }

    /// Serves until graceful shutdown or cancellation, then drains and closes.
    public func run() async throws {
        let listener = self.listener
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await listener.closeFuture.get()
            } onGracefulShutdown: {
                listener.close(promise: nil)
            }
        } onCancel: {
            listener.close(promise: nil)
        }
        await drain()
    }

    /// Whether it has begun to drain (answers new calls with a failure).
    public var isDraining: Bool { connections.isDraining }

    /// Stops accepting, waits for the calls under way, closes every connection.
    public func shutdown() async {
        try? await listener.close()
        await drain()
    }

    private func drain() async {
        connections.beginDraining()
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: drainTimeout)
        while connections.callsInFlight > 0, clock.now < deadline {
            do { try await Task.sleep(for: .milliseconds(5)) } catch { break }
        }
        if connections.callsInFlight > 0 {
            logger.warning("closing cell wire connections with calls under way", metadata: ["calls": "\(connections.callsInFlight)"])
        }
        for channel in connections.all() { try? await channel.close() }
    }

    /// The open connections and the calls under way on all of them.
    final class Connections: Sendable {
        private let open = Mutex<[ObjectIdentifier: any Channel]>([:])
        private let calls = Atomic<Int>(0)
        private let draining = Atomic<Bool>(false)

        var callsInFlight: Int { calls.load(ordering: .relaxed) }
        var isDraining: Bool { draining.load(ordering: .relaxed) }
        func beginDraining() { draining.store(true, ordering: .relaxed) }

        func opened(_ channel: any Channel) {
            let key = ObjectIdentifier(channel)
            open.withLock { $0[key] = channel }
            channel.closeFuture.whenComplete { [self] _ in _ = open.withLock { $0.removeValue(forKey: key) } }
        }

        func all() -> [any Channel] { open.withLock { Array($0.values) } }
        func callStarted() { calls.add(1, ordering: .relaxed) }
        func callFinished() { calls.subtract(1, ordering: .relaxed) }
    }
}

/// Runs each call of one connection as a task and writes its answer back.
final class WireServerHandler: ChannelDuplexHandler {
    typealias InboundIn = WireFrame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let responder: any CellWireResponder
    private let limit: Int
    private let queueLimit: Int
    private let connections: CellWireServer.Connections
    private var inFlight = 0
    private var waiting = CircularBuffer<Call>()
    private let clock = ContinuousClock()
    private var readHeld = false
    private var active = true

    init(responder: any CellWireResponder, limit: Int, queueLimit: Int, connections: CellWireServer.Connections) {
        self.responder = responder
        self.limit = limit
        self.queueLimit = queueLimit
        self.connections = connections
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.kind == .call else {
            context.fireErrorCaught(CellWireError.unknownKind(frame.kind.rawValue))
            context.close(promise: nil)
            return
        }
        guard !connections.isDraining else {
            write(.failure(CellWireError.goingAway), to: frame, context: context)
            return
        }
        let deadline = frame.timeoutMilliseconds == 0 ? nil : clock.now.advanced(by: .milliseconds(Int64(frame.timeoutMilliseconds)))
        connections.callStarted()
        if inFlight < limit {
            start(Call(frame: frame, deadline: deadline), context: context)
        } else {
            waiting.append(Call(frame: frame, deadline: deadline))
        }
    }

    /// A call read and not yet answered, with when its caller stops waiting.
    struct Call {
        var frame: WireFrame
        var deadline: ContinuousClock.Instant?
    }

    private func start(_ call: Call, context: ChannelHandlerContext) {
        if let deadline = call.deadline, clock.now >= deadline {
            // The caller has given up: never start what it no longer waits for.
            connections.callFinished()
            write(.failure(CellWireError.expiredBeforeStart), to: call.frame, context: context)
            return
        }
        let frame = call.frame
        let deadline = call.deadline
        inFlight += 1
        let responder = self.responder
        let allocator = context.channel.allocator
        let eventLoop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: eventLoop)
        Task {
            let answer: Result<ByteBuffer, any Error>
            do {
                answer = .success(
                    try await responder.answer(method: frame.method, payload: frame.payload, deadline: deadline, allocator: allocator)
                )
            } catch {
                answer = .failure(error)
            }
            eventLoop.execute {
                bound.value.handler.finish(frame, answer, context: bound.value.context)
            }
        }
    }

    private func finish(_ call: WireFrame, _ answer: Result<ByteBuffer, any Error>, context: ChannelHandlerContext) {
        inFlight -= 1
        connections.callFinished()
        guard active else {
            // The connection is gone: nobody will read the answers of the calls still waiting.
            for _ in waiting { connections.callFinished() }
            waiting.removeAll()
            return
        }
        write(answer, to: call, context: context)
        startNextWaiting(context: context)
    }

    private func startNextWaiting(context: ChannelHandlerContext) {
        while inFlight < limit, let next = waiting.popFirst() { start(next, context: context) }
        if readHeld, waiting.count < queueLimit {
            readHeld = false
            context.read()
        }
    }

    private func write(_ answer: Result<ByteBuffer, any Error>, to call: WireFrame, context: ChannelHandlerContext) {
        var buffer: ByteBuffer
        switch answer {
        case .success(let payload) where payload.readableBytes <= WireFrame.maximumSize - WireFrame.headerSize:
            buffer = context.channel.allocator.buffer(capacity: 14 + payload.readableBytes)
            buffer.writeWireFrame(kind: .answer, method: call.method, callID: call.callID, payload: payload)
        case .success(let payload):
            write(.failure(CellWireError.frameTooLarge(payload.readableBytes)), to: call, context: context)
            return
        case .failure(let error):
            var reason = ByteBuffer(string: "\(error)")
            if reason.readableBytes > 4096 { reason = reason.getSlice(at: reason.readerIndex, length: 4096)! }
            let code = (error as? CellWireError)?.failureCode ?? .failed
            buffer = context.channel.allocator.buffer(capacity: 14 + reason.readableBytes)
            buffer.writeWireFrame(kind: .failure, method: call.method, callID: call.callID, argument: code.rawValue, payload: reason)
        }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if waiting.count >= queueLimit {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        active = false
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
