import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import OrderCellTestSupport
import OrderHTTP
import ServiceLifecycle
import Synchronization
import Testing

/// The order API's HTTP/1.1 server, spoken to over raw sockets: what a
/// client sees on the wire (pipelining, keep-alive, limits, errors,
/// shutdown) whatever the routes behind it.
@Suite("Order API HTTP server")
struct OrderHTTPServerTests {
    /// A server with a fast route, a slow one and a small body limit, for the length of `body`.
    /// Counts the slow requests the router has started; a held one answers
    /// only once the test releases it, otherwise after 400 ms.
    final class SlowRequests: Sendable {
        let started = Mutex(0)
        let held: Bool
        let released = Mutex(false)

        init(held: Bool = false) { self.held = held }

        func wait() async throws {
            guard held else { return try await Task.sleep(for: .milliseconds(400)) }
            while !released.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        }
    }

    static func serving(
        idleTimeout: TimeAmount = .seconds(30), slow: SlowRequests = SlowRequests(), onGracefulShutdown: @escaping @Sendable () -> Void = {},
        _ body: (_ port: Int, _ group: ServiceGroup) async throws -> Void
    ) async throws {
        let router = Router(context: OrderRequestContext.self)
        router.add(middleware: ProblemMiddleware(logger: Logger(label: "test")))
        router.get("/fast") { _, _ in "fast" }
        router.get("/slow") { _, _ in
            slow.started.withLock { $0 += 1 }
            try await slow.wait()
            return "slow"
        }
        router.post("/echo") { request, _ in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            return String(buffer: bytes)
        }
        var logger = Logger(label: "ordercell.test.http")
        logger.logLevel = .critical
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = OrderHTTPServer(
            host: "127.0.0.1", port: 0, responder: router.buildResponder(), tls: .disabled, maximumBodyBytes: 1024, idleTimeout: idleTimeout, logger: logger,
            onServerRunning: { continuation.yield($0) }, onGracefulShutdown: onGracefulShutdown
        )
        let group = ServiceGroup(services: [server], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            do {
                try await body(port, group)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// Sends `request` as it is and reads until the server closes (or `timeout`).
    static func exchange(_ port: Int, _ request: String, timeout: Duration = .seconds(5)) async throws -> (text: String, closed: Bool) {
        try await RawConnection.exchange(port: port, request, timeout: timeout)
    }

    @Test("pipelined requests are answered in order on one connection, which closes after Connection: close")
    func pipelining() async throws {
        try await Self.serving { port, _ in
            let (text, closed) = try await Self.exchange(
                port,
                "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            #expect(closed)
            let slow = try #require(text.range(of: "\r\n\r\nslow"))
            let fast = try #require(text.range(of: "\r\n\r\nfast"))
            let missing = try #require(text.range(of: "HTTP/1.1 404"))
            #expect(slow.lowerBound < fast.lowerBound && fast.lowerBound < missing.lowerBound, "answers in request order: \(text)")
            #expect(text.components(separatedBy: "Content-Length:").count == 4, "every answer says its length")
            #expect(text.contains("application/problem+json") && text.contains(#""code":"not_found""#))
            #expect(text.hasSuffix("}"), "the connection closes after the last answer")
        }
    }

    @Test("a body over the limit is refused with 413 problem+json and the connection closes")
    func bodyLimit() async throws {
        try await Self.serving { port, _ in
            let body = String(repeating: "x", count: 2000)
            let (text, closed) = try await Self.exchange(
                port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            )
            #expect(text.hasPrefix("HTTP/1.1 413"))
            #expect(text.contains(#""code":"payload_too_large""#))
            #expect(text.lowercased().contains("connection: close"))
            #expect(closed)
            // Within the limit, chunked: read whole.
            let (echo, _) = try await Self.exchange(
                port, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            )
            #expect(echo.hasPrefix("HTTP/1.1 200") && echo.hasSuffix("\r\n\r\nhello"))
        }
    }

    @Test("a body announced or streamed over the limit gets its 413 while the client is still sending; the rest is dropped")
    func bodyLimitWhileSending() async throws {
        try await Self.serving { port, _ in
            // Announced too large: refused from the head, before any body byte.
            let announced = try await RawConnection.open(port: port)
            defer { announced.close() }
            announced.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
            try await announced.waitFor("payload_too_large", timeout: .seconds(5))
            announced.send(String(repeating: "y", count: 5000))
            let (text, closed) = try await announced.readUntilClosed(timeout: .seconds(5))
            #expect(text.hasPrefix("HTTP/1.1 413") && closed)
            // Streamed in chunks past the limit: refused when it crosses it.
            let streamed = try await RawConnection.open(port: port)
            defer { streamed.close() }
            streamed.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            let chunk = String(repeating: "z", count: 700)
            streamed.send("2bc\r\n\(chunk)\r\n")
            streamed.send("2bc\r\n\(chunk)\r\n")
            try await streamed.waitFor("payload_too_large", timeout: .seconds(5))
            streamed.send("2bc\r\n\(chunk)\r\n0\r\n\r\n")
            let (answer, streamedClosed) = try await streamed.readUntilClosed(timeout: .seconds(5))
            #expect(answer.hasPrefix("HTTP/1.1 413") && streamedClosed)
        }
    }

    @Test("a request whose body stalls is closed after the idle timeout")
    func stalledBody() async throws {
        try await Self.serving(idleTimeout: .milliseconds(200)) { port, _ in
            let socket = try await RawConnection.open(port: port)
            defer { socket.close() }
            socket.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            let (text, closed) = try await socket.readUntilClosed(timeout: .seconds(5))
            #expect(text.isEmpty && closed, "nothing answered, connection closed: \(text)")
        }
    }

    @Test("a client that half-closes after its request still gets the answer")
    func halfClose() async throws {
        try await Self.serving { port, _ in
            let socket = try await RawConnection.open(port: port)
            defer { socket.close() }
            socket.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            try await socket.closeOutput()
            let (text, closed) = try await socket.readUntilClosed(timeout: .seconds(5))
            #expect(text.hasPrefix("HTTP/1.1 200") && text.hasSuffix("slow"))
            #expect(closed)
        }
    }

    @Test("after a Connection: close answer, pipelined requests behind it are not run")
    func nothingAfterClose() async throws {
        let slow = SlowRequests()
        try await Self.serving(slow: slow) { port, _ in
            let (text, closed) = try await Self.exchange(
                port, "GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            #expect(text.hasPrefix("HTTP/1.1 200") && text.hasSuffix("fast") && closed)
            #expect(slow.started.withLock { $0 } == 0, "the request after the close was never started")
        }
    }

    @Test("a request that is not HTTP gets 400 problem+json with a stable code, and the connection closes")
    func malformed() async throws {
        try await Self.serving { port, _ in
            for garbage in ["GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\nHo st: x\r\n\r\n", "POST /v1/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"] {
                let (text, closed) = try await Self.exchange(port, garbage)
                #expect(text.hasPrefix("HTTP/1.1 400"), "\(garbage.debugDescription): \(text)")
                #expect(text.lowercased().contains("content-type: application/problem+json"))
                #expect(text.contains(#""code":"invalid_request""#))
                #expect(text.lowercased().contains("connection: close"))
                #expect(closed)
            }
        }
    }

    @Test("a malformed request pipelined behind a good one: the good one is answered first, then the 400")
    func malformedBehindAGoodRequest() async throws {
        try await Self.serving { port, _ in
            let (text, closed) = try await Self.exchange(port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n")
            let slow = try #require(text.range(of: "\r\n\r\nslow"), "\(text)")
            let refused = try #require(text.range(of: "HTTP/1.1 400"), "\(text)")
            #expect(slow.lowerBound < refused.lowerBound)
            #expect(text.contains(#""code":"invalid_request""#))
            #expect(closed)
        }
    }

    @Test("an HTTP/1.0 request is answered in HTTP/1.0 and the connection closes")
    func http10() async throws {
        try await Self.serving { port, _ in
            let (text, closed) = try await Self.exchange(port, "GET /fast HTTP/1.0\r\n\r\n")
            #expect(text.hasPrefix("HTTP/1.0 200"))
            #expect(text.contains("Date: ") && text.contains("Server: OrderCell"))
            #expect(closed)
        }
    }

    @Test("graceful shutdown lets a request under way finish, then closes its connection")
    func gracefulShutdown() async throws {
        // The slow request is held until the shutdown has reached the server:
        // a fixed delay loses the race on a busy machine, and a response that
        // ends before the shutdown rightly keeps the connection open (until
        // the server, then idle, closes it).
        let slow = SlowRequests(held: true)
        try await Self.serving(slow: slow) { port, group in
            let socket = try await RawConnection.open(port: port)
            defer { socket.close() }
            // An idle connection closes as soon as the drain reaches it, which
            // shows the drain has begun for the busy one too.
            let idle = try await RawConnection.open(port: port)
            defer { idle.close() }
            socket.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            while slow.started.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(5)) }
            await group.triggerGracefulShutdown()
            let (idleText, idleClosed) = try await idle.readUntilClosed(timeout: .seconds(20))
            #expect(idleText.isEmpty && idleClosed, "the idle connection closes at once, unanswered")
            await #expect(throws: (any Error).self, "nothing listens any more") { _ = try await RawConnection.open(port: port) }
            // The busy connection's drain event was sent with the idle one's;
            // it may sit behind other work on its own event loop for a moment.
            try await Task.sleep(for: .milliseconds(200))
            slow.released.withLock { $0 = true }
            let (text, closed) = try await socket.readUntilClosed(timeout: .seconds(5))
            #expect(text.hasPrefix("HTTP/1.1 200") && text.hasSuffix("slow"), "the slow answer arrives whole: \(text)")
            #expect(text.lowercased().contains("connection: close"))
            #expect(closed)
        }
    }

    @Test("a graceful shutdown first tells the application, which can answer requests that would wait (long polls)")
    func shutdownAnswersWaitingRequests() async throws {
        // The slow route is held until released; the shutdown hook releases it.
        let slow = SlowRequests(held: true)
        try await Self.serving(slow: slow, onGracefulShutdown: { slow.released.withLock { $0 = true } }) { port, group in
            let socket = try await RawConnection.open(port: port)
            defer { socket.close() }
            socket.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            while slow.started.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(5)) }
            #expect(!slow.released.withLock { $0 })
            await group.triggerGracefulShutdown()
            let (text, closed) = try await socket.readUntilClosed(timeout: .seconds(8))
            #expect(text.hasPrefix("HTTP/1.1 200") && text.hasSuffix("slow"), "answered, not cut: \(text)")
            #expect(closed)
        }
    }

    @Test("a connection idle for longer than the idle timeout is closed")
    func idleTimeout() async throws {
        // Long enough that a busy machine (suites run in parallel) delivers the
        // request before the timer fires, short enough for a test.
        try await Self.serving(idleTimeout: .seconds(2)) { port, _ in
            let socket = try await RawConnection.open(port: port)
            defer { socket.close() }
            socket.send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
            let (text, closed) = try await socket.readUntilClosed(timeout: .seconds(15))
            #expect(text.hasPrefix("HTTP/1.1 200"))
            #expect(closed, "closed once idle")
        }
    }
}
