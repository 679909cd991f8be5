import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A client's multiplexed connection to one cell service: made on first
/// use (TCP, TLS when chosen, the hellos), remade after it closes, many
/// calls in flight at once.
public final class CellProtocolConnection: Sendable {
    public let host: String
    public let port: Int
    private let tls: CellClientTLS
    private let group: any EventLoopGroup
    private let handshakeLimit: Duration
    private let state = Mutex(CellConnectionState<OpenCellConnection, EventLoopFuture<OpenCellConnection>>())

    /// - Parameter handshakeLimit: the most that TCP, TLS and the hellos may
    ///   take together (a call's own deadline may cut it shorter). Two
    ///   seconds leaves a release build's TLS handshake a wide margin while a
    ///   dead endpoint is given up soon enough for the next one to be tried.
    public init(
        host: String, port: Int, tls: CellClientTLS, handshakeLimit: Duration = .seconds(2),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.handshakeLimit = handshakeLimit
        self.group = group
    }

    /// Sends a call of `method` and waits for its answer's payload.
    ///
    /// - Throws: ``CellProtocolError``: `.failed` when the cell service reported
    ///   that it could not serve the call; any other case when the call may
    ///   not have reached it or was not answered in time.
    ///
    /// - Parameter minimumPeerMinor: the call carries what a cell service
    ///   of an earlier minor version would ignore but must not (a merchant's
    ///   ownership): against such a peer it fails with
    ///   ``CellProtocolError/unsupportedVersion(peer:ours:)`` unsent.
    public func call(method: UInt8, payload: ByteBuffer, timeout: Duration, minimumPeerMinor: UInt16 = 0) async throws -> ByteBuffer {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        let channel = try await channel(timeout: timeout)
        // Connecting (or waiting for another call's connection) spends the same deadline.
        let remaining = clock.now.duration(to: deadline)
        guard remaining > .milliseconds(1) else { throw CellProtocolError.deadlineExceeded }
        let promise = channel.channel.eventLoop.makePromise(of: ByteBuffer.self)
        let call = CellClientHandler.Call(
            method: method, payload: payload, timeout: TimeAmount(remaining), minimumPeerMinor: minimumPeerMinor, promise: promise
        )
        if channel.channel.eventLoop.inEventLoop {
            channel.handler.value.send(call)
        } else {
            channel.channel.eventLoop.execute { channel.handler.value.send(call) }
        }
        return try await promise.futureResult.get()
    }

    /// Refuses new calls (``CellProtocolError/shutDown``) and closes the
    /// connection once the calls under way are answered or expired, so that
    /// replacing a cell's client (its endpoints changed) fails no call.
    public func shutdown() {
        _ = shutDownConnection()
    }

    /// ``shutdown()``, then waits until the connection is closed (its calls
    /// under way answered or expired): for a process's graceful shutdown.
    public func shutdownAndWait() async {
        guard let closed = shutDownConnection() else { return }
        try? await closed.get()
    }

    /// Marks the connection shut down and asks its channel to close when idle; the channel's close future.
    private func shutDownConnection() -> EventLoopFuture<Void>? {
        guard let channel = state.withLock({ $0.shutDown() }) else { return nil }
        channel.channel.eventLoop.execute { channel.handler.value.closeWhenIdle() }
        return channel.channel.closeFuture
    }

    private func channel(timeout: Duration) async throws -> OpenCellConnection {
        let (action, promise) = state.withLock { state -> (CellConnectionState<OpenCellConnection, EventLoopFuture<OpenCellConnection>>.Action, EventLoopPromise<OpenCellConnection>?) in
            let action = state.nextCall(now: .now())
            guard case .connect = action else { return (action, nil) }
            let promise = group.next().makePromise(of: OpenCellConnection.self)
            state.connecting(promise.futureResult)
            return (action, promise)
        }
        switch action {
        case .use(let channel): return channel
        case .fail(let error): throw error
        case .wait(let attempt): return try await attempt.get()
        case .connect:
            // Started outside the lock: the attempt's callbacks take it.
            connect(timeout: timeout, into: promise!)
            return try await promise!.futureResult.get()
        }
    }

    /// Makes a connection and completes `promise` with it once the server's
    /// hello has accepted this side's, or with ``CellProtocolError/unreachable(_:)``,
    /// ``CellProtocolError/tlsFailed(_:)`` or ``CellProtocolError/unsupportedVersion(peer:ours:)``.
    private func connect(timeout: Duration, into promise: EventLoopPromise<OpenCellConnection>) {
        let endpoint = "\(host):\(port)"
        let host = self.host
        let tls = self.tls
        // TCP, TLS and the hellos together get what the first call may wait, at most the handshake limit.
        let handshakeTimeout = TimeAmount(min(timeout, handshakeLimit))
        // Each channel's handler and handshake are kept as its initializer makes
        // them: the winner's are known even when the server answers and closes
        // before the connect future's callbacks run (a refused version, say),
        // when a lookup in its pipeline would find the handler gone. Per
        // channel, because connecting to a name tries each of its addresses
        // (Happy Eyeballs), and a losing attempt's close must not fail the
        // winner's handshake.
        let handshakes = Handshakes()
        ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(handshakeTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = CellClientHandler(ready: channel.eventLoop.makePromise(), tls: tls.isEnabled)
                    try tls.addHandler(to: channel, host: host)
                    try channel.pipeline.syncOperations.addHandlers([ByteToMessageHandler(CellFrameDecoder()), handler])
                    handshakes.record(channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop), ready: handler.ready.futureResult)
                }
            }
            .connect(host: host, port: port)
            .flatMap { channel -> EventLoopFuture<OpenCellConnection> in
                guard let (handler, ready) = handshakes.take(channel) else {
                    channel.close(promise: nil)
                    return channel.eventLoop.makeFailedFuture(CellProtocolError.unreachable("the connection was made without its handler"))
                }
                let stalled = channel.eventLoop.scheduleTask(in: handshakeTimeout) {
                    handler.value.handshakeFailed(.unreachable("no hello within \(handshakeTimeout.nanoseconds / 1_000_000) ms"))
                }
                return ready.always { _ in stalled.cancel() }.map { OpenCellConnection(channel: channel, handler: handler) }
            }
            .whenComplete { [self] result in
                switch result {
                case .success(let connection):
                    guard state.withLock({ $0.connected(connection) }) else {
                        connection.channel.close(promise: nil)
                        promise.fail(CellProtocolError.shutDown)
                        return
                    }
                    connection.channel.closeFuture.whenComplete { _ in self.state.withLock { $0.closed(connection) } }
                    promise.succeed(connection)
                case .failure(let error):
                    let failure = Self.connectFailure(error, endpoint: endpoint)
                    state.withLock { $0.connectFailed(reason: failure.description, now: .now()) }
                    promise.fail(failure)
                }
            }
    }

    /// What a failed attempt to connect is reported as.
    static func connectFailure(_ error: any Error, endpoint: String) -> CellProtocolError {
        switch error {
        case let error as CellProtocolError:
            switch error {
            case .unreachable(let reason): return .unreachable("\(endpoint): \(reason)")
            case .tlsFailed(let reason): return .tlsFailed("\(endpoint): \(reason)")
            default: return error
            }
        case let error as NIOSSLError: return .tlsFailed("\(endpoint): \(error) (does the cell service serve TLS?)")
        case let error as BoringSSLError: return .tlsFailed("\(endpoint): \(error)")
        default: return .unreachable("\(endpoint): \(error)")
        }
    }
}

/// The handler and handshake of each channel one attempt to connect made,
/// by channel: the attempt keeps the winner's, the losers' go with it.
final class Handshakes: Sendable {
    private let byChannel = Mutex<[ObjectIdentifier: (handler: NIOLoopBound<CellClientHandler>, ready: EventLoopFuture<Void>)]>([:])

    func record(_ channel: any Channel, handler: NIOLoopBound<CellClientHandler>, ready: EventLoopFuture<Void>) {
        byChannel.withLock { $0[ObjectIdentifier(channel)] = (handler, ready) }
    }

    func take(_ channel: any Channel) -> (NIOLoopBound<CellClientHandler>, EventLoopFuture<Void>)? {
        byChannel.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}

/// An open connection and its handler (touched only on the connection's event loop).
final class OpenCellConnection: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<CellClientHandler>

    init(channel: any Channel, handler: NIOLoopBound<CellClientHandler>) {
        self.channel = channel
        self.handler = handler
    }
}

/// Says hello, checks the server's, then numbers the calls of one
/// connection, sends them, and completes each when its answer arrives.
final class CellClientHandler: ChannelInboundHandler {
    typealias InboundIn = CellFrame
    typealias OutboundOut = ByteBuffer

    struct Call: Sendable {
        var method: UInt8
        var payload: ByteBuffer
        var timeout: TimeAmount
        var minimumPeerMinor: UInt16 = 0
        var promise: EventLoopPromise<ByteBuffer>
    }

    /// Completed when the server's hello accepted this side's (or the handshake failed).
    let ready: EventLoopPromise<Void>
    private var handshaking = true
    /// The server's hello, once it accepted this side's.
    private var peer: CellHello?
    private let tls: Bool
    private var context: ChannelHandlerContext?
    private var pending: [UInt32: (promise: EventLoopPromise<ByteBuffer>, timer: Scheduled<Void>)] = [:]
    private var nextID: UInt32 = 0
    private var closingWhenIdle = false
    /// Deadlines missed in a row with no answer in between: a peer that went
    /// away without a reset (a half-open connection) answers nothing.
    private var expiriesInARow = 0
    static let expiriesBeforeClosing = 3

    init(ready: EventLoopPromise<Void>, tls: Bool) {
        self.ready = ready
        self.tls = tls
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handshakeFailed(.unreachable("the connection closed before the cell service's hello"))
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        // Written now; with TLS it leaves after the handshake, which NIOSSL's handler runs first.
        var hello = context.channel.allocator.buffer(capacity: CellHello.size)
        hello.writeCellHello(.current)
        context.writeAndFlush(wrapOutboundOut(hello), promise: nil)
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let hello = event as? CellHello else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard CellHello.current.accepts(hello) else {
            handshakeFailed(.unsupportedVersion(peer: hello, ours: .current))
            return
        }
        handshaking = false
        peer = hello
        ready.succeed()
    }

    /// Ends a connection whose handshake did not complete, with `error` for the one waiting for it.
    func handshakeFailed(_ error: CellProtocolError) {
        guard handshaking else { return }
        handshaking = false
        ready.fail(error)
        context?.close(promise: nil)
    }

    /// Sends `call` (on the event loop).
    func send(_ call: Call) {
        guard let context, context.channel.isActive, !closingWhenIdle else {
            call.promise.fail(CellProtocolError.connectionClosed)
            return
        }
        if let peer, peer.minor < call.minimumPeerMinor {
            call.promise.fail(CellProtocolError.unsupportedVersion(peer: peer, ours: .current))
            return
        }
        guard call.payload.readableBytes <= CellFrame.maximumSize - CellFrame.headerSize else {
            call.promise.fail(CellProtocolError.frameTooLarge(call.payload.readableBytes))
            return
        }
        nextID &+= 1
        let id = nextID
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let timer = context.eventLoop.scheduleTask(in: call.timeout) { bound.value.expire(id) }
        pending[id] = (call.promise, timer)
        let milliseconds = UInt32(clamping: max(1, call.timeout.nanoseconds / 1_000_000))
        var buffer = context.channel.allocator.buffer(capacity: 14 + call.payload.readableBytes)
        buffer.writeCellFrame(kind: .call, method: call.method, callID: id, argument: milliseconds, payload: call.payload)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    private func expire(_ id: UInt32) {
        guard let call = pending.removeValue(forKey: id) else { return }
        call.promise.fail(CellProtocolError.deadlineExceeded)
        expiriesInARow += 1
        if expiriesInARow >= Self.expiriesBeforeClosing {
            // Calls keep missing their deadlines with nothing answered (a peer gone
            // without a reset?): send nothing more on this connection, and close it
            // once the calls on it are answered or expired — closing now would fail
            // them before their deadlines while a slow but live cell may still
            // finish them. The next connection is made after the close.
            closingWhenIdle = true
        }
        closeIfIdleAndClosing()
    }

    /// Closes the connection now if nothing is pending, else once the last pending call is done.
    func closeWhenIdle() {
        closingWhenIdle = true
        closeIfIdleAndClosing()
    }

    private func closeIfIdleAndClosing() {
        if closingWhenIdle, pending.isEmpty { context?.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.kind {
        case .answer:
            expiriesInARow = 0
            guard let call = pending.removeValue(forKey: frame.callID) else { return }
            call.timer.cancel()
            call.promise.succeed(frame.payload)
            closeIfIdleAndClosing()
        case .failure:
            expiriesInARow = 0
            guard let call = pending.removeValue(forKey: frame.callID) else { return }
            call.timer.cancel()
            call.promise.fail(frame.failure ?? .failed(String(buffer: frame.payload)))
            closeIfIdleAndClosing()
        case .call:
            context.fireErrorCaught(CellProtocolError.unknownKind(frame.kind.rawValue))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeFailed(
            tls
                ? .tlsFailed("the cell service closed the connection before its hello")
                : .unreachable("the cell service closed the connection before its hello (does it require TLS?)")
        )
        let calls = pending
        pending = [:]
        for call in calls.values {
            call.timer.cancel()
            call.promise.fail(CellProtocolError.connectionClosed)
        }
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let error as CellProtocolError: handshakeFailed(error)
        case is NIOSSLError, is BoringSSLError: handshakeFailed(.tlsFailed("\(error)"))
        default: handshakeFailed(.unreachable("\(error)"))
        }
        context.close(promise: nil)
    }
}
