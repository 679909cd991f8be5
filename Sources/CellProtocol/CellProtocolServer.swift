import Logging
import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL
import NIOTLS
import ServiceLifecycle
import Synchronization

/// What a ``CellProtocolServer`` serves: the answer to one call.
public protocol CellProtocolResponder: Sendable {
    /// The payload of the answer to a call of `method`. A thrown error goes
    /// back to the caller as a failure frame carrying its description.
    ///
    /// - Parameters:
    ///   - caller: who calls, as its mutual TLS certificate says
    ///     (``CellCaller/anonymous`` without mutual TLS): the responder
    ///     decides what that caller may do.
    ///   - deadline: when the caller stops waiting (nil: it did not say).
    ///     Work that would change something must not start after it.
    func answer(
        method: UInt8, payload: ByteBuffer, caller: CellCaller, deadline: ContinuousClock.Instant?, allocator: ByteBufferAllocator
    ) async throws -> ByteBuffer
}

/// Serves the cell protocol on a TCP port: hellos, then frames in, one task
/// per call, answers out in whatever order the calls finish.
///
/// At most ``maximumCallsPerConnection`` calls of a connection run at once;
/// calls read beyond that wait their turn. The server keeps reading while
/// fewer than ``maximumQueuedCallsPerConnection`` wait, so that a call's
/// deadline counts from (nearly) when it was sent, not from when a busy
/// server got round to reading it; beyond that it stops reading from the
/// connection until calls finish (the client's calls wait in its socket,
/// they are not refused).
///
/// On graceful shutdown it quiesces with swift-nio-extras'
/// `ServerQuiescingHelper`: it stops accepting, each connection answers new
/// calls with ``CellFrame/FailureCode/goingAway`` (never started, so the
/// proxy sends them to another instance), lets the calls under way finish
/// (up to `drainTimeout`) and closes; ``run()`` returns when every
/// connection has closed.
public final class CellProtocolServer: Service {
    public let host: String
    /// The port it listens on (the one the system chose when asked for 0).
    public let port: Int
    public let maximumCallsPerConnection: Int
    public let maximumQueuedCallsPerConnection: Int
    private let listener: any Channel
    private let quiescing: ServerQuiescingHelper
    private let drained: EventLoopPromise<Void>
    private let draining: Draining
    private let logger: Logger

    /// Whether the server has begun to drain; the connections read it when a call arrives.
    final class Draining: Sendable {
        private let flag = Atomic<Bool>(false)
        var isSet: Bool { flag.load(ordering: .relaxed) }
        /// Returns true the first time only.
        func set() -> Bool { !flag.exchange(true, ordering: .relaxed) }
    }

    private init(
        host: String, port: Int, listener: any Channel, quiescing: ServerQuiescingHelper, drained: EventLoopPromise<Void>,
        draining: Draining, maximumCallsPerConnection: Int, maximumQueuedCallsPerConnection: Int, logger: Logger
    ) {
        self.host = host
        self.port = port
        self.listener = listener
        self.quiescing = quiescing
        self.drained = drained
        self.draining = draining
        self.maximumCallsPerConnection = maximumCallsPerConnection
        self.maximumQueuedCallsPerConnection = maximumQueuedCallsPerConnection
        self.logger = logger
    }

    /// Listens on `host:port` (0: any free port) and serves `responder` on every connection.
    ///
    /// - Parameter tls: chosen explicitly; ``CellServerTLS/disabled`` is for loopback.
    public static func bind(
        host: String, port: Int, responder: some CellProtocolResponder, tls: CellServerTLS, maximumCallsPerConnection: Int = 256,
        maximumQueuedCallsPerConnection: Int = 4096, drainTimeout: Duration = .seconds(10),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) async throws -> CellProtocolServer {
        let quiescing = ServerQuiescingHelper(group: group)
        let draining = Draining()
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try tls.addHandler(to: channel)
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(CellFrameDecoder()),
                        CellServerHandler(
                            responder: responder, limit: maximumCallsPerConnection, queueLimit: maximumQueuedCallsPerConnection,
                            draining: draining, drainTimeout: TimeAmount(drainTimeout), tls: tls.isEnabled, logger: logger
                        ),
                    ])
                }
            }
            .bind(host: host, port: port).get()
        let bound = listener.localAddress?.port ?? port
        return CellProtocolServer(
            host: host, port: bound, listener: listener, quiescing: quiescing, drained: listener.eventLoop.makePromise(),
            draining: draining, maximumCallsPerConnection: maximumCallsPerConnection,
            maximumQueuedCallsPerConnection: maximumQueuedCallsPerConnection, logger: logger
        )
    }

    /// A server let go without a shutdown stops accepting and closes its
    /// connections as a shutdown would (the promise the quiescing completes
    /// outlives it), rather than leaving its listener and promise behind.
    deinit {
        beginDraining()
    }

    /// Serves until graceful shutdown or cancellation, then drains and returns when every connection has closed.
    public func run() async throws {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await listener.closeFuture.get()
            } onGracefulShutdown: {
                self.beginDraining()
            }
        } onCancel: {
            self.beginDraining()
        }
        beginDraining()
        try? await drained.futureResult.get()
    }

    /// Whether it has begun to drain (answers new calls with a failure).
    public var isDraining: Bool { draining.isSet }

    /// Stops accepting, lets the calls under way finish, and returns when every connection has closed.
    public func shutdown() async {
        beginDraining()
        try? await drained.futureResult.get()
    }

    private func beginDraining() {
        guard draining.set() else { return }
        quiescing.initiateShutdown(promise: drained)
    }
}

/// Runs each call of one connection as a task and writes its answer back.
final class CellServerHandler: ChannelDuplexHandler {
    typealias InboundIn = CellFrame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let responder: any CellProtocolResponder
    private let limit: Int
    private let queueLimit: Int
    private let draining: CellProtocolServer.Draining
    private let drainTimeout: TimeAmount
    private let logger: Logger
    private var inFlight = 0
    private var waiting = CircularBuffer<Call>()
    private let clock = ContinuousClock()
    private var readHeld = false
    private var active = true
    /// The server is shutting down: close once the calls of this connection are answered.
    private var quiescing = false
    /// The client's hello was accepted: its calls may run.
    private var greeted = false
    /// Who the peer is: set from its certificate when the TLS handshake completes
    /// (no call is read before it does); anonymous only on a plaintext connection.
    private var caller: CellCaller

    init(
        responder: any CellProtocolResponder, limit: Int, queueLimit: Int, draining: CellProtocolServer.Draining, drainTimeout: TimeAmount,
        tls: Bool, logger: Logger
    ) {
        self.caller = tls ? .unidentified("no client certificate") : .anonymous
        self.responder = responder
        self.limit = limit
        self.queueLimit = queueLimit
        self.draining = draining
        self.drainTimeout = drainTimeout
        self.logger = logger
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let hello as CellHello:
            // The server's hello goes back either way, so that the client can say which versions met.
            var reply = context.channel.allocator.buffer(capacity: CellHello.size)
            reply.writeCellHello(.current)
            guard CellHello.current.accepts(hello) else {
                logger.notice(
                    "refused a client of another major version of the cell protocol",
                    metadata: ["client_version": "\(hello)", "server_version": "\(CellHello.current)", "peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")"]
                )
                context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in context.close(promise: nil) }
                return
            }
            greeted = true
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        case TLSUserEvent.handshakeCompleted:
            if let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
                let certificate = handler.peerCertificate
            {
                caller = CellCaller(certificate: certificate)
            }
            context.fireUserInboundEventTriggered(event)
        case is ChannelShouldQuiesceEvent:
            quiescing = true
            closeIfQuiescedAndIdle(context: context)
            let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: drainTimeout) {
                let (handler, context) = bound.value
                guard handler.active else { return }
                handler.logger.warning("closing a cell protocol connection with calls under way", metadata: ["calls": "\(handler.inFlight + handler.waiting.count)"])
                context.close(promise: nil)
            }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func closeIfQuiescedAndIdle(context: ChannelHandlerContext) {
        if quiescing, active, inFlight == 0, waiting.isEmpty { context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // Frames that followed a refused hello in the same read are never run.
        guard greeted else { return }
        guard frame.kind == .call else {
            context.fireErrorCaught(CellProtocolError.unknownKind(frame.kind.rawValue))
            context.close(promise: nil)
            return
        }
        guard !quiescing, !draining.isSet else {
            write(.failure(CellProtocolError.goingAway), to: frame, context: context)
            return
        }
        let deadline = frame.timeoutMilliseconds == 0 ? nil : clock.now.advanced(by: .milliseconds(Int64(frame.timeoutMilliseconds)))
        if inFlight < limit {
            start(Call(frame: frame, deadline: deadline), context: context)
        } else {
            waiting.append(Call(frame: frame, deadline: deadline))
        }
    }

    /// A call read and not yet answered, with when its caller stops waiting.
    struct Call {
        var frame: CellFrame
        var deadline: ContinuousClock.Instant?
    }

    private func start(_ call: Call, context: ChannelHandlerContext) {
        if let deadline = call.deadline, clock.now >= deadline {
            // The caller has given up: never start what it no longer waits for.
            write(.failure(CellProtocolError.expiredBeforeStart), to: call.frame, context: context)
            return
        }
        let frame = call.frame
        let deadline = call.deadline
        inFlight += 1
        let responder = self.responder
        let caller = self.caller
        let allocator = context.channel.allocator
        let eventLoop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: eventLoop)
        Task {
            let answer: Result<ByteBuffer, any Error>
            do {
                answer = .success(
                    try await responder.answer(method: frame.method, payload: frame.payload, caller: caller, deadline: deadline, allocator: allocator)
                )
            } catch {
                answer = .failure(error)
            }
            eventLoop.execute {
                bound.value.handler.finish(frame, answer, context: bound.value.context)
            }
        }
    }

    private func finish(_ call: CellFrame, _ answer: Result<ByteBuffer, any Error>, context: ChannelHandlerContext) {
        inFlight -= 1
        guard active else {
            // The connection is gone: nobody will read the answers of the calls still waiting.
            waiting.removeAll()
            return
        }
        write(answer, to: call, context: context)
        startNextWaiting(context: context)
        closeIfQuiescedAndIdle(context: context)
    }

    private func startNextWaiting(context: ChannelHandlerContext) {
        while inFlight < limit, let next = waiting.popFirst() { start(next, context: context) }
        if readHeld, waiting.count < queueLimit {
            readHeld = false
            context.read()
        }
    }

    private func write(_ answer: Result<ByteBuffer, any Error>, to call: CellFrame, context: ChannelHandlerContext) {
        var buffer: ByteBuffer
        switch answer {
        case .success(let payload) where payload.readableBytes <= CellFrame.maximumSize - CellFrame.headerSize:
            buffer = context.channel.allocator.buffer(capacity: 14 + payload.readableBytes)
            buffer.writeCellFrame(kind: .answer, method: call.method, callID: call.callID, payload: payload)
        case .success(let payload):
            write(.failure(CellProtocolError.frameTooLarge(payload.readableBytes)), to: call, context: context)
            return
        case .failure(let error):
            var reason = ByteBuffer(string: "\(error)")
            if reason.readableBytes > 4096 { reason = reason.getSlice(at: reason.readerIndex, length: 4096)! }
            let code = (error as? CellProtocolError)?.failureCode ?? .failed
            buffer = context.channel.allocator.buffer(capacity: 14 + reason.readableBytes)
            buffer.writeCellFrame(kind: .failure, method: call.method, callID: call.callID, argument: code.rawValue, payload: reason)
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
        // A peer that speaks another protocol, or TLS where there is none (or none where TLS is required), is told nothing more.
        logger.notice(
            "closed a cell protocol connection", metadata: ["error": "\(error)", "peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")"]
        )
        context.close(promise: nil)
    }
}
