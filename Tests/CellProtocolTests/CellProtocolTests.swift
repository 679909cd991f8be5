import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing

@testable import CellProtocol

/// Answers method 1 with its payload after the delay in milliseconds the
/// payload's first byte gives, fails method 2, sleeps 3 s on method 3,
/// counts the calls of method 4, answers method 5 with who called, and
/// counts the calls under way.
struct EchoResponder: CellProtocolResponder {
    let running = Counter()
    let fourthStarted = Counter()

    func answer(
        method: UInt8, payload: ByteBuffer, caller: CellCaller, deadline: ContinuousClock.Instant?, allocator: ByteBufferAllocator
    ) async throws -> ByteBuffer {
        running.enter()
        defer { running.leave() }
        switch method {
        case 1:
            if let delay = payload.getInteger(at: payload.readerIndex, as: UInt8.self), delay > 0 {
                try await Task.sleep(for: .milliseconds(Int(delay)))
            }
            return payload
        case 3:
            try await Task.sleep(for: .seconds(3))
            return payload
        case 4:
            fourthStarted.enter()
            return payload
        case 5:
            return allocator.buffer(string: caller.description)
        default:
            throw Refused(reason: "method \(method) is not served")
        }
    }

    struct Refused: Error, CustomStringConvertible {
        let reason: String
        var description: String { reason }
    }

    final class Counter: Sendable {
        private let state = Mutex((now: 0, most: 0))
        func enter() { state.withLock { $0.now += 1; $0.most = max($0.most, $0.now) } }
        func leave() { state.withLock { $0.now -= 1 } }
        var most: Int { state.withLock { $0.most } }
        var current: Int { state.withLock { $0.now } }
    }
}

private func payload(delay: UInt8, _ tag: UInt32) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeInteger(delay)
    buffer.writeInteger(tag)
    return buffer
}

private let logger = Logger(label: "cell-protocol-test")

/// Waits (up to 5 s) until `condition` holds.
private func waitUntil(_ condition: () -> Bool) async throws {
    for _ in 0..<1000 where !condition() { try await Task.sleep(for: .milliseconds(5)) }
    try #require(condition())
}

@Suite("Cell protocol")
struct CellProtocolTests {
    @Test("many concurrent calls on one connection each get their own answer, whatever order they finish in")
    func multiplexing() async throws {
        let server = try await CellProtocolServer.bind(host: "127.0.0.1", port: 0, responder: EchoResponder(), tls: .disabled, logger: logger)
        let connection = CellProtocolConnection(host: "127.0.0.1", port: server.port, tls: .disabled)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for tag in 0..<300 as Range<UInt32> {
                group.addTask {
                    let sent = payload(delay: UInt8(tag % 7), tag)
                    let answer = try await connection.call(method: 1, payload: sent, timeout: .seconds(10))
                    #expect(answer == sent)
                }
            }
            try await group.waitForAll()
        }
        connection.shutdown()
        await server.shutdown()
    }

    @Test("a call the responder fails comes back as .failed with its reason; the connection stays usable")
    func failure() async throws {
        let server = try await CellProtocolServer.bind(host: "127.0.0.1", port: 0, responder: EchoResponder(), tls: .disabled, logger: logger)
        let connection = CellProtocolConnection(host: "127.0.0.1", port: server.port, tls: .disabled)
        await #expect(throws: CellProtocolError.failed("method 2 is not served")) {
            try await connection.call(method: 2, payload: ByteBuffer(), timeout: .seconds(5))
        }
        let answer = try await connection.call(method: 1, payload: payload(delay: 0, 7), timeout: .seconds(5))
        #expect(answer == payload(delay: 0, 7))
        connection.shutdown()
        await server.shutdown()
    }

    @Test("a call not answered within its deadline fails with .deadlineExceeded; a later answer is dropped")
    func deadline() async throws {
        let server = try await CellProtocolServer.bind(
            host: "127.0.0.1", port: 0, responder: EchoResponder(), tls: .disabled, drainTimeout: .milliseconds(100), logger: logger
        )
        let connection = CellProtocolConnection(host: "127.0.0.1", port: server.port, tls: .disabled)
        // Connected first: the short deadline is the call's, not the handshake's.
        _ = try await connection.call(method: 1, payload: payload(delay: 0, 1), timeout: .seconds(5))
        await #expect(throws: CellProtocolError.deadlineExceeded) {
            try await connection.call(method: 3, payload: ByteBuffer(), timeout: .milliseconds(100))
        }
        let answer = try await connection.call(method: 1, payload: payload(delay: 0, 9), timeout: .seconds(5))
        #expect(answer == payload(delay: 0, 9))
        connection.shutdown()
        await server.shutdown()
    }

    @Test("calls under way when the server goes fail with .connectionClosed, later ones fail fast, a new server is found again")
    func reconnect() async throws {
        let responder = EchoResponder()
        let first = try await CellProtocolServer.bind(
            host: "127.0.0.1", port: 0, responder: responder, tls: .disabled, drainTimeout: .milliseconds(50), logger: logger
        )
        let port = first.port
        let connection = CellProtocolConnection(host: "127.0.0.1", port: port, tls: .disabled)
        _ = try await connection.call(method: 1, payload: payload(delay: 0, 1), timeout: .seconds(5))
        let slow = Task { try await connection.call(method: 3, payload: ByteBuffer(), timeout: .seconds(10)) }
        try await waitUntil { responder.running.current == 1 }
        await first.shutdown()
        await #expect(throws: CellProtocolError.connectionClosed) { try await slow.value }
        await #expect {
            try await connection.call(method: 1, payload: payload(delay: 0, 2), timeout: .seconds(1))
        } throws: { error in
            // Closed (the close was not yet noticed) or unreachable (a new connection was refused).
            if case CellProtocolError.unreachable = error { return true }
            return error as? CellProtocolError == .connectionClosed
        }
        let second = try await CellProtocolServer.bind(host: "127.0.0.1", port: port, responder: EchoResponder(), tls: .disabled, logger: logger)
        var answered = false
        for _ in 0..<50 where !answered {
            answered = (try? await connection.call(method: 1, payload: payload(delay: 0, 3), timeout: .seconds(1))) != nil
            if !answered { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(answered)
        connection.shutdown()
        await second.shutdown()
    }

    @Test("a connection holds at most the configured number of calls at once; the rest wait and are all answered")
    func backpressure() async throws {
        let responder = EchoResponder()
        let server = try await CellProtocolServer.bind(
            host: "127.0.0.1", port: 0, responder: responder, tls: .disabled, maximumCallsPerConnection: 4, logger: logger
        )
        let connection = CellProtocolConnection(host: "127.0.0.1", port: server.port, tls: .disabled)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for tag in 0..<40 as Range<UInt32> {
                group.addTask { () async throws in
                    // Long enough that the first four overlap on a busy machine.
                    let sent = payload(delay: 60, tag)
                    let answer = try await connection.call(method: 1, payload: sent, timeout: .seconds(10))
                    #expect(answer == sent)
                }
            }
            try await group.waitForAll()
        }
        #expect(responder.running.most == 4)
        connection.shutdown()
        await server.shutdown()
    }

    @Test("a call whose caller stopped waiting while it queued behind others is never started")
    func expiredBeforeStart() async throws {
        let responder = EchoResponder()
        let server = try await CellProtocolServer.bind(
            host: "127.0.0.1", port: 0, responder: responder, tls: .disabled, maximumCallsPerConnection: 1, logger: logger
        )
        let connection = CellProtocolConnection(host: "127.0.0.1", port: server.port, tls: .disabled)
        _ = try await connection.call(method: 1, payload: payload(delay: 0, 0), timeout: .seconds(5))
        // Method 3 takes 3 s: long enough that the next call surely queues behind it, however busy the machine.
        let slow = Task { try await connection.call(method: 3, payload: payload(delay: 0, 1), timeout: .seconds(10)) }
        try await waitUntil { responder.running.current == 1 }
        await #expect(throws: CellProtocolError.deadlineExceeded) {
            try await connection.call(method: 4, payload: ByteBuffer(), timeout: .milliseconds(50))
        }
        #expect(try await slow.value == payload(delay: 0, 1))
        try await Task.sleep(for: .milliseconds(50))
        #expect(responder.fourthStarted.most == 0)
        connection.shutdown()
        await server.shutdown()
    }

    @Test("shutting a connection down lets its calls under way finish and refuses new ones")
    func gracefulClientShutdown() async throws {
        let responder = EchoResponder()
        let server = try await CellProtocolServer.bind(host: "127.0.0.1", port: 0, responder: responder, tls: .disabled, logger: logger)
        let connection = CellProtocolConnection(host: "127.0.0.1", port: server.port, tls: .disabled)
        let slow = Task { try await connection.call(method: 1, payload: payload(delay: 100, 5), timeout: .seconds(5)) }
        try await waitUntil { responder.running.current == 1 }
        connection.shutdown()
        await #expect(throws: CellProtocolError.shutDown) {
            try await connection.call(method: 1, payload: payload(delay: 0, 6), timeout: .seconds(1))
        }
        #expect(try await slow.value == payload(delay: 100, 5))
        await server.shutdown()
    }

    @Test("a draining server finishes the calls under way and answers new ones with a failure it never starts")
    func drainingServer() async throws {
        let responder = EchoResponder()
        let server = try await CellProtocolServer.bind(host: "127.0.0.1", port: 0, responder: responder, tls: .disabled, logger: logger)
        let connection = CellProtocolConnection(host: "127.0.0.1", port: server.port, tls: .disabled)
        let slow = Task { try await connection.call(method: 3, payload: payload(delay: 0, 7), timeout: .seconds(10)) }
        try await waitUntil { responder.running.current == 1 }
        let draining = Task { await server.shutdown() }
        try await waitUntil { server.isDraining }
        await #expect(throws: CellProtocolError.goingAway) {
            try await connection.call(method: 4, payload: ByteBuffer(), timeout: .seconds(1))
        }
        #expect(responder.fourthStarted.most == 0)
        #expect(try await slow.value == payload(delay: 0, 7))
        await draining.value
        connection.shutdown()
    }

    @Test("after three missed deadlines in a row a connection takes no new calls, lets its pending ones finish, and is replaced")
    func missedDeadlinesReplaceTheConnection() async throws {
        let server = try await CellProtocolServer.bind(
            host: "127.0.0.1", port: 0, responder: EchoResponder(), tls: .disabled, drainTimeout: .milliseconds(100), logger: logger
        )
        let connection = CellProtocolConnection(host: "127.0.0.1", port: server.port, tls: .disabled)
        _ = try await connection.call(method: 1, payload: payload(delay: 0, 0), timeout: .seconds(5))
        let pending = Task { try await connection.call(method: 1, payload: payload(delay: 250, 1), timeout: .seconds(5)) }
        for _ in 0..<3 {
            await #expect(throws: CellProtocolError.deadlineExceeded) {
                try await connection.call(method: 3, payload: ByteBuffer(), timeout: .milliseconds(30))
            }
        }
        // The call already under way is not cut short by the decision to replace the connection.
        #expect(try await pending.value == payload(delay: 250, 1))
        var answered = false
        for _ in 0..<50 where !answered {
            answered = (try? await connection.call(method: 1, payload: payload(delay: 0, 2), timeout: .seconds(1))) != nil
            if !answered { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(answered)
        connection.shutdown()
        await server.shutdown()
    }

    @Test("a peer that does not start with the protocol's hello is disconnected")
    func notTheProtocol() async throws {
        let server = try await CellProtocolServer.bind(host: "127.0.0.1", port: 0, responder: EchoResponder(), tls: .disabled, logger: logger)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: server.port).get()
        try await channel.writeAndFlush(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
        try await channel.closeFuture.get()
        await server.shutdown()
    }
}

@Suite("Cell protocol frames")
struct CellFrameTests {
    @Test("frames split across reads are put back together; oversized and short frames are refused")
    func decoding() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(CellFrameDecoder()))
        var bytes = ByteBuffer()
        bytes.writeCellHello(.current)
        bytes.writeCellFrame(kind: .call, method: 4, callID: 77, payload: ByteBuffer(string: "hello"))
        bytes.writeCellFrame(kind: .answer, method: 1, callID: 78, payload: ByteBuffer())
        for index in 0..<bytes.readableBytes {
            try channel.writeInbound(bytes.getSlice(at: index, length: 1)!)
        }
        let first = try #require(try channel.readInbound(as: CellFrame.self))
        #expect(first == CellFrame(kind: .call, method: 4, callID: 77, payload: ByteBuffer(string: "hello")))
        let second = try #require(try channel.readInbound(as: CellFrame.self))
        #expect(second.kind == .answer && second.callID == 78 && second.payload.readableBytes == 0)

        var huge = ByteBuffer()
        huge.writeInteger(UInt32(CellFrame.maximumSize + 1))
        #expect(throws: CellProtocolError.frameTooLarge(CellFrame.maximumSize + 1)) { try channel.writeInbound(huge) }

        let other = EmbeddedChannel(handler: ByteToMessageHandler(CellFrameDecoder(expectsHello: false)))
        var short = ByteBuffer()
        short.writeInteger(UInt32(2))
        short.writeInteger(UInt16(0))
        #expect(throws: CellProtocolError.frameTooShort(2)) { try other.writeInbound(short) }

        let third = EmbeddedChannel(handler: ByteToMessageHandler(CellFrameDecoder(expectsHello: false)))
        var unknown = ByteBuffer()
        unknown.writeCellFrame(kind: .call, method: 1, callID: 1, payload: ByteBuffer())
        unknown.setInteger(UInt8(9), at: 4)
        #expect(throws: CellProtocolError.unknownKind(9)) { try third.writeInbound(unknown) }
    }
}

extension CellFrameTests {
    @Test("a failure says in its header whether the call was started; the text does not decide it")
    func failureCodes() throws {
        func failure(code: UInt32, reason: String) throws -> CellProtocolError? {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(CellFrameDecoder(expectsHello: false)))
            var bytes = ByteBuffer()
            bytes.writeCellFrame(kind: .failure, method: 1, callID: 5, argument: code, payload: ByteBuffer(string: reason))
            try channel.writeInbound(bytes)
            return try #require(try channel.readInbound(as: CellFrame.self)).failure
        }
        #expect(try failure(code: CellFrame.FailureCode.goingAway.rawValue, reason: "draining") == .goingAway)
        #expect(try failure(code: CellFrame.FailureCode.expiredBeforeStart.rawValue, reason: "late") == .expiredBeforeStart)
        // A server that sends no code (0), whatever its text, and a code this build does not know: plain failures.
        #expect(try failure(code: 0, reason: CellProtocolError.goingAway.description) == .failed(CellProtocolError.goingAway.description))
        #expect(try failure(code: 9, reason: "something new") == .failed("something new"))
        // The server's own refusals carry their codes; anything else is a plain failure.
        #expect(CellProtocolError.goingAway.failureCode == .goingAway)
        #expect(CellProtocolError.expiredBeforeStart.failureCode == .expiredBeforeStart)
        #expect(CellProtocolError.deadlineExceeded.failureCode == .failed)
        // Only calls carry a timeout.
        #expect(CellFrame(kind: .failure, method: 1, callID: 1, argument: 2, payload: ByteBuffer()).timeoutMilliseconds == 0)
        #expect(CellFrame(kind: .call, method: 1, callID: 1, argument: 250, payload: ByteBuffer()).timeoutMilliseconds == 250)
    }
}

@Suite("Cell protocol connection state")
struct CellConnectionStateTests {
    final class Link {}

    @Test("connect once, fail fast while backing off (100 ms doubling to 2 s), reconnect after a close")
    func transitions() {
        var state = CellConnectionState<Link, Int>()
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        guard case .connect = state.nextCall(now: start) else { Issue.record("expected connect"); return }
        state.connecting(1)
        guard case .wait(1) = state.nextCall(now: start) else { Issue.record("expected to wait for attempt 1"); return }
        state.connectFailed(reason: "refused", now: start)
        guard case .fail(.unreachable("refused")) = state.nextCall(now: start + .milliseconds(99)) else {
            Issue.record("expected a fast failure"); return
        }
        guard case .connect = state.nextCall(now: start + .milliseconds(100)) else { Issue.record("expected connect"); return }
        state.connecting(2)
        state.connectFailed(reason: "refused", now: start)
        guard case .fail = state.nextCall(now: start + .milliseconds(199)) else { Issue.record("expected 200 ms"); return }
        var delays: [TimeAmount] = []
        for attempt in 3..<12 {
            state.connecting(attempt)
            state.connectFailed(reason: "refused", now: start)
            if case .backingOff(let until, _, _) = state.state { delays.append(until - start) }
        }
        #expect(delays.first == .milliseconds(400))
        #expect(delays.last == .seconds(2))
        state.connecting(12)
        let link = Link()
        let kept = state.connected(link)
        #expect(kept)
        guard case .use(let used) = state.nextCall(now: start), used === link else { Issue.record("expected the link"); return }
        state.closed(Link())
        guard case .use = state.nextCall(now: start) else { Issue.record("a stranger's close must not matter"); return }
        state.closed(link)
        guard case .connect = state.nextCall(now: start) else { Issue.record("expected reconnect"); return }
        state.connecting(13)
        #expect(state.shutDown() === nil)
        let keptAfterShutdown = state.connected(link)
        #expect(!keptAfterShutdown)
        guard case .fail(.shutDown) = state.nextCall(now: start) else { Issue.record("expected shut down"); return }
    }
}
