import Hummingbird
import NIOCore

/// The request context of OrderCell's HTTP servers: Hummingbird's basic
/// context plus the peer's address, which the public API's failed
/// authentication limit counts by (behind a load balancer, the balancer's
/// address: limit there too, docs/security.md).
public struct OrderRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The address of the connection's peer; nil when it is not known.
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
