import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import OrderModel
import Synchronization

/// One connection's requests: collects each (head, body, end), runs the
/// router in a task, writes the response, and keeps the connection's
/// keep-alive, body-size and shutdown rules.
final class OrderHTTPHandler<Responder: HTTPResponder>: ChannelDuplexHandler where Responder.Context == OrderRequestContext {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// What every connection's handler shares.
    struct Settings: Sendable {
        var responder: Responder
        var serverName: String
        var maximumBodyBytes: Int
        var logger: Logger
        var dates: HTTPDateCache
    }

    private enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer)
        /// The body was too large and refused; the rest of it is read and dropped, then the connection closes.
        case discarding
        case responding(keepAlive: Bool)
        /// The last response said `Connection: close`: nothing more is read.
        case closed
    }

    private let settings: Settings
    private var state = State.idle
    private var closeWhenIdle = false

    init(_ settings: Settings) { self.settings = settings }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .idle):
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > settings.maximumBodyBytes {
                refuseTooLarge(context: context, version: head.version)
                return
            }
            state = .receiving(head, context.channel.allocator.buffer(capacity: 0))
        case (.body(var chunk), .receiving(let head, var body)):
            guard body.readableBytes + chunk.readableBytes <= settings.maximumBodyBytes else {
                refuseTooLarge(context: context, version: head.version)
                return
            }
            body.writeBuffer(&chunk)
            state = .receiving(head, body)
        case (.end, .receiving(let head, let body)):
            state = .responding(keepAlive: head.isKeepAlive && !closeWhenIdle)
            handle(context: context, head: head, body: body)
        case (.body, .discarding):
            break
        case (.end, .discarding):
            context.close(promise: nil)
        case (_, .closed):
            break
        default:
            // Parts out of order cannot come from NIO's decoder; refuse rather than guess.
            context.close(promise: nil)
        }
    }

    /// A request NIO cannot decode is answered 400 problem+json (not NIO's
    /// empty 400), and the connection closes: the decoder cannot go on after
    /// it. NIO's pipelining assistance holds such an error back until the
    /// response under way has ended, so there is none to interleave with.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        settings.logger.debug("HTTP connection error", metadata: ["error": "\(error)"])
        switch state {
        case .idle, .receiving:
            guard error is HTTPParserError else { break }
            let refusal = OrderError.invalidRequest("the request is not valid HTTP/1.1 (\(error))")
            state = .responding(keepAlive: false)
            finish(context: context, version: .http1_1, head: Problem.response(refusal).head, body: ByteBuffer(string: Problem.json(refusal)))
            return
        case .responding:
            // Answer what is under way, then close.
            closeWhenIdle = true
            return
        case .closed:
            // The last answer is being written; its completion closes the connection.
            return
        case .discarding:
            break
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is CloseConnectionWhenIdle:
            closeWhenIdle = true
            if case .idle = state { context.close(promise: nil) }
        case ChannelEvent.inputClosed:
            // The client sent all it will: answer what is under way, then close.
            closeWhenIdle = true
            switch state {
            case .responding: break
            default: context.close(promise: nil)
            }
        case let idle as IdleStateHandler.IdleStateEvent where idle == .read:
            // Silent between requests, or in the middle of one (a stalled body): closed.
            if case .responding = state { break }
            context.close(promise: nil)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func handle(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        let request: Request
        do {
            request = Request(head: try HTTPRequest(head, secure: false, splitCookie: false), body: RequestBody(buffer: body))
        } catch {
            let refusal = OrderError.invalidRequest("the request head is not valid HTTP: \(error)")
            state = .responding(keepAlive: false)
            finish(context: context, version: head.version, head: Problem.response(refusal).head, body: ByteBuffer(string: Problem.json(refusal)))
            return
        }
        let settings = self.settings
        let channel = context.channel
        let version = head.version
        let isHead = head.method == .HEAD
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        Task {
            let requestContext = OrderRequestContext(source: ApplicationRequestContextSource(channel: channel, logger: settings.logger))
            var response: Response
            do {
                response = try await settings.responder.respond(to: request, context: requestContext)
            } catch {
                settings.logger.error("unhandled error", metadata: ["error": "\(error)"])
                response = Problem.response(OrderError(.internalError, "the request could not be answered"))
            }
            let collector = BodyCollector()
            do {
                try await response.body.write(BodyCollector.Writer(collector: collector))
            } catch {
                settings.logger.error("response body failed", metadata: ["error": "\(error)"])
                channel.close(promise: nil)
                return
            }
            let head = response.head
            let collected = collector.buffer.withLock { $0 }
            if channel.eventLoop.inEventLoop {
                let (handler, context) = loopBound.value
                handler.finish(context: context, version: version, head: head, body: collected, headOnly: isHead)
            } else {
                channel.eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.finish(context: context, version: version, head: head, body: collected, headOnly: isHead)
                }
            }
        }
    }

    /// Answers 413 before the router sees the request, stops sending, and
    /// reads and drops the rest of the body (closing the socket while the
    /// client still sends would reset the connection and lose the answer);
    /// the connection closes at the request's end, its EOF, or the idle timeout.
    private func refuseTooLarge(context: ChannelHandlerContext, version: HTTPVersion) {
        state = .discarding
        let error = OrderError(.payloadTooLarge, "the request body is larger than \(settings.maximumBodyBytes) bytes")
        write(context: context, version: version, head: Problem.response(error).head, body: ByteBuffer(string: Problem.json(error)), closes: true)
            .whenComplete { [channel = context.channel] _ in channel.close(mode: .output, promise: nil) }
    }

    /// Writes head, body and end in one flush, then keeps or closes the connection.
    private func finish(context: ChannelHandlerContext, version: HTTPVersion, head: HTTPResponse, body: ByteBuffer, headOnly: Bool = false) {
        guard case .responding(let keepAlive) = state else { return }
        let closes = !keepAlive || closeWhenIdle
        // Settled before writing: the response's end lets NIO's pipelining
        // assistance hand over the next buffered request at once, from inside
        // the write — to be served, or ignored after a `Connection: close`.
        // Requests pipelined behind this one reach this handler in `.closed` and
        // are dropped; the connection closes once this response is written.
        state = closes ? .closed : .idle
        let written = write(context: context, version: version, head: head, body: body, closes: closes, headOnly: headOnly)
        if closes { written.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) } }
    }

    /// Writes one response — head with its length, date, server and
    /// connection headers, body, end — in one flush; the future is the end's.
    /// An answer to `HEAD` (`headOnly`) says the body's length and sends no
    /// body (RFC 9110 §9.3.2): one would be read as the start of the next answer.
    private func write(
        context: ChannelHandlerContext, version: HTTPVersion, head: HTTPResponse, body: ByteBuffer, closes: Bool, headOnly: Bool = false
    ) -> EventLoopFuture<Void> {
        var response = HTTPResponseHead(head)
        response.version = version
        // No body and no length on 1xx, 204 and 304 (RFC 9110 §8.6).
        let bodyless = head.status.kind == .informational || head.status.code == 204 || head.status.code == 304
        var body = body
        if bodyless {
            body.clear()
        } else if !(headOnly && response.headers.contains(name: "Content-Length")) {
            // An answer to HEAD keeps the length its GET answer would have (the router's HEAD endpoint says it).
            response.headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        }
        response.headers.replaceOrAdd(name: "Date", value: settings.dates.current())
        response.headers.replaceOrAdd(name: "Server", value: settings.serverName)
        if closes { response.headers.replaceOrAdd(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(response)), promise: nil)
        if body.readableBytes > 0, !headOnly { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        return context.writeAndFlush(wrapOutboundOut(.end(nil)))
    }

}

/// Collects a response body's buffers: the order API's bodies are small and
/// written whole, so the response goes out in one write with its length.
final class BodyCollector: Sendable {
    let buffer = Mutex(ByteBuffer())

    struct Writer: ResponseBodyWriter {
        let collector: BodyCollector
        mutating func write(_ buffer: ByteBuffer) async throws {
            var buffer = buffer
            collector.buffer.withLock { $0.writeBuffer(&buffer) }
        }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}

/// The `Date` header's text, made at most once a second.
final class HTTPDateCache: Sendable {
    private let cached = Mutex<(second: Int, text: String)>((-1, ""))

    func current() -> String {
        let now = Date()
        let second = Int(now.timeIntervalSince1970)
        if let text = cached.withLock({ $0.second == second ? $0.text : nil }) { return text }
        let text = Self.format(now)
        cached.withLock { $0 = (second, text) }
        return text
    }

    private static let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// RFC 9110 IMF-fixdate, e.g. `Sun, 22 Nov 2026 07:42:11 GMT`.
    static func format(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "GMT")!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let days = Int(floor(date.timeIntervalSince1970 / 86_400))
        let weekday = weekdays[((days % 7) + 7) % 7]
        func two(_ value: Int?) -> String { let v = value ?? 0; return v < 10 ? "0\(v)" : "\(v)" }
        return "\(weekday), \(two(parts.day)) \(months[(parts.month ?? 1) - 1]) \(parts.year ?? 1970) \(two(parts.hour)):\(two(parts.minute)):\(two(parts.second)) GMT"
    }
}
