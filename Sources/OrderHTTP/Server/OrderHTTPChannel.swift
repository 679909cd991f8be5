import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// The order API's connections, as a child channel of Hummingbird's server:
/// NIO's HTTP/1.1 codec with pipelining assistance, an idle timer and
/// ``OrderHTTPHandler``, which runs each request through the router.
///
/// The handler answers on the connection's event loop, so there is nothing
/// for ``handle(value:logger:)`` to drive: it holds the connection's place in
/// the server until it closes (closing it at once when cancelled).
struct OrderHTTPChannel<Responder: HTTPResponder>: ServerChildChannel where Responder.Context == OrderRequestContext {
    struct Value: ServerChildChannelValue {
        let channel: any Channel
    }

    let settings: OrderHTTPHandler<Responder>.Settings
    let idleTimeout: TimeAmount
    let tls: HTTPServerTLS

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try channel.syncOptions?.setOption(.socketOption(.tcp_nodelay), value: 1)
            // TLS at the head: everything after it reads and writes plaintext.
            try tls.addHandler(to: channel)
            // First in the pipeline: the server's quiesce request reaches the handler that knows
            // whether a request is under way, not NIO's pipelining handler, which would close
            // the connection without the answer saying `Connection: close`.
            try pipeline.addHandler(QuiesceRequestHandler())
            try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: false)
            try pipeline.addHandlers([IdleStateHandler(readTimeout: idleTimeout), OrderHTTPHandler(settings)])
            return Value(channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await withTaskCancellationHandler {
            try? await value.channel.closeFuture.get()
        } onCancel: {
            value.channel.close(promise: nil)
        }
    }
}

/// Asks a connection to close as soon as it has no request under way.
struct CloseConnectionWhenIdle {}

/// Turns the server's `ChannelShouldQuiesceEvent` into ``CloseConnectionWhenIdle``
/// for ``OrderHTTPHandler``, which then answers what is under way with
/// `Connection: close` and closes.
final class QuiesceRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            context.fireUserInboundEventTriggered(CloseConnectionWhenIdle())
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
