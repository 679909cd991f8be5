import NIOCore
import NIOPosix
import Synchronization

/// A client's multiplexed connection to one cell service: made on first
/// use, remade after it closes, many calls in flight at once.
public final class CellWireConnection: Sendable {
    public let host: String
    public let port: Int
    private let group: any EventLoopGroup
    private let state = Mutex(WireConnectionState<WireChannel, EventLoopFuture<WireChannel>>())

    public init(host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.host = host
        self.port = port
        self.group = group
    }

    /// Sends a call of `method` and waits for its answer's payload.
    ///
    /// - Throws: ``CellWireError``: `.failed` when the cell service reported
    ///   that it could not serve the call; any other case when the call may
    ///   not have reached it or was not answered in time.
    public func call(method: UInt8, payload: ByteBuffer, timeout: Duration) async throws -> ByteBuffer {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        let channel = try await channel(timeout: timeout)
        // Connecting (or waiting for another call's connection) spends the same deadline.
        let remaining = clock.now.duration(to: deadline)
        guard remaining > .milliseconds(1) else { throw CellWireError.deadlineExceeded }
        let promise = channel.channel.eventLoop.makePromise(of: ByteBuffer.self)
        let call = WireClientHandler.Call(method: method, payload: payload, timeout: TimeAmount(remaining), promise: promise)
        if channel.channel.eventLoop.inEventLoop {
            channel.handler.value.send(call)
        } else {
            channel.channel.eventLoop.execute { channel.handler.value.send(call) }
        }
        return try await promise.futureResult.get()
    }

    /// Refuses new calls (``CellWireError/shutDown``) and closes the
    /// connection once the calls under way are answered or expired, so that
    /// replacing a cell's client (its endpoints changed) fails no call.
    public func shutdown() {
        guard let channel = state.withLock({ $0.shutDown() }) else { return }
        channel.channel.eventLoop.execute { channel.handler.value.closeWhenIdle() }
    }

    private func channel(timeout: Duration) async throws -> WireChannel {
        let (action, promise) = state.withLock { state -> (WireConnectionState<WireChannel, EventLoopFuture<WireChannel>>.Action, EventLoopPromise<WireChannel>?) in
            let action = state.nextCall(now: .now())
            guard case .connect = action else { return (action, nil) }
            let promise = group.next().makePromise(of: WireChannel.self)
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

    /// Makes a connection and completes `promise` with it, or with ``CellWireError/unreachable(_:)``.
    private func connect(timeout: Duration, into promise: EventLoopPromise<WireChannel>) {
        let endpoint = "\(host):\(port)"
        ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(min(TimeAmount(timeout), .seconds(2)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(WireFrameDecoder(expectsPreamble: false)), WireClientHandler(),
                    ])
                }
            }
            .connect(host: host, port: port)
            .flatMapThrowing { channel -> WireChannel in
                let handler = try channel.pipeline.syncOperations.handler(type: WireClientHandler.self)
                return WireChannel(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
            }
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    guard state.withLock({ $0.connected(channel) }) else {
                        channel.channel.close(promise: nil)
                        promise.fail(CellWireError.shutDown)
                        return
                    }
                    channel.channel.closeFuture.whenComplete { _ in self.state.withLock { $0.closed(channel) } }
                    promise.succeed(channel)
                case .failure(let error):
                    state.withLock { $0.connectFailed(reason: "\(endpoint): \(error)", now: .now()) }
                    promise.fail(CellWireError.unreachable("\(endpoint): \(error)"))
                }
            }
    }
}

/// An open connection and its handler (touched only on the connection's event loop).
final class WireChannel: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<WireClientHandler>

    init(channel: any Channel, handler: NIOLoopBound<WireClientHandler>) {
        self.channel = channel
        self.handler = handler
    }
}

/// Numbers the calls of one connection, sends them, and completes each when its answer arrives.
final class WireClientHandler: ChannelInboundHandler {
    typealias InboundIn = WireFrame
    typealias OutboundOut = ByteBuffer

    struct Call: Sendable {
        var method: UInt8
        var payload: ByteBuffer
        var timeout: TimeAmount
        var promise: EventLoopPromise<ByteBuffer>
    }

    private var context: ChannelHandlerContext?
    private var pending: [UInt32: (promise: EventLoopPromise<ByteBuffer>, timer: Scheduled<Void>)] = [:]
    private var nextID: UInt32 = 0
    private var closingWhenIdle = false
    /// Deadlines missed in a row with no answer in between: a peer that went
    /// away without a reset (a half-open connection) answers nothing.
    private var expiriesInARow = 0
    static let expiriesBeforeClosing = 3

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: WireFrame.preamble)), promise: nil)
        context.fireChannelActive()
    }

    /// Sends `call` (on the event loop).
    func send(_ call: Call) {
        guard let context, context.channel.isActive, !closingWhenIdle else {
            call.promise.fail(CellWireError.connectionClosed)
            return
        }
        guard call.payload.readableBytes <= WireFrame.maximumSize - WireFrame.headerSize else {
            call.promise.fail(CellWireError.frameTooLarge(call.payload.readableBytes))
            return
        }
        nextID &+= 1
        let id = nextID
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let timer = context.eventLoop.scheduleTask(in: call.timeout) { bound.value.expire(id) }
        pending[id] = (call.promise, timer)
        let milliseconds = UInt32(clamping: max(1, call.timeout.nanoseconds / 1_000_000))
        var buffer = context.channel.allocator.buffer(capacity: 14 + call.payload.readableBytes)
        buffer.writeWireFrame(kind: .call, method: call.method, callID: id, argument: milliseconds, payload: call.payload)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    private func expire(_ id: UInt32) {
        guard let call = pending.removeValue(forKey: id) else { return }
        call.promise.fail(CellWireError.deadlineExceeded)
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
            context.fireErrorCaught(CellWireError.unknownKind(frame.kind.rawValue))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let calls = pending
        pending = [:]
        for call in calls.values {
            call.timer.cancel()
            call.promise.fail(CellWireError.connectionClosed)
        }
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
