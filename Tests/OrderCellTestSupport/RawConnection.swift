import NIOCore
import NIOPosix
import Synchronization

/// A client TCP connection for the tests: raw bytes in, everything read until the peer closes.
public final class RawConnection: Sendable {
    private let channel: any Channel
    private let received: Collected

    final class Collected: Sendable {
        let state = Mutex<(text: String, closed: Bool)>(("", false))
    }

    private final class Reader: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let collected: Collected
        init(_ collected: Collected) { self.collected = collected }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            collected.state.withLock { $0.text += text }
        }
        func channelInactive(context: ChannelHandlerContext) {
            collected.state.withLock { $0.closed = true }
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            // The server's FIN: it will send nothing more.
            if case ChannelEvent.inputClosed = event { collected.state.withLock { $0.closed = true } }
        }
    }

    private init(channel: any Channel, received: Collected) {
        self.channel = channel
        self.received = received
    }

    public static func open(host: String = "127.0.0.1", port: Int) async throws -> RawConnection {
        let collected = Collected()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Reader(collected)) }
            }
            .connect(host: host, port: port).get()
        return RawConnection(channel: channel, received: collected)
    }

    public func send(_ text: String) {
        channel.writeAndFlush(ByteBuffer(string: text), promise: nil)
    }

    /// Half-closes: the server reads EOF, the connection still receives.
    public func closeOutput() async throws {
        try await channel.close(mode: .output).get()
    }

    /// Waits until `text` has arrived; throws if it has not within `timeout`.
    public func waitFor(_ text: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if received.state.withLock({ $0.text.contains(text) }) { return }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw NotArrived(text: text, timeout: timeout)
    }

    /// What ``waitFor(_:timeout:)`` throws.
    public struct NotArrived: Error, CustomStringConvertible {
        public var text: String
        public var timeout: Duration
        public var description: String { "\(text) did not arrive within \(timeout)" }
    }

    /// Sends `request` on a new connection and reads until the server closes it (or `timeout`).
    public static func exchange(
        host: String = "127.0.0.1", port: Int, _ request: String, timeout: Duration = .seconds(5)
    ) async throws -> (text: String, closed: Bool) {
        let socket = try await open(host: host, port: port)
        defer { socket.close() }
        socket.send(request)
        return try await socket.readUntilClosed(timeout: timeout)
    }

    /// What arrived until the server closed, or until `timeout` (then `closed` is false).
    public func readUntilClosed(timeout: Duration) async throws -> (text: String, closed: Bool) {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            let state = received.state.withLock { $0 }
            if state.closed { return state }
            try await Task.sleep(for: .milliseconds(10))
        }
        return received.state.withLock { $0 }
    }

    public func close() { channel.close(promise: nil) }
}
