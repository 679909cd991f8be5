import OrderModel

/// Where a cell service instance listens, and how it is spoken to.
///
/// `wire://host:port` is the cell wire protocol; `grpc://host:port`, or a
/// bare `host:port`, is gRPC.
public struct CellServiceEndpoint: Sendable, Equatable {
    /// Which protocol the cell service is spoken to over.
    public enum Transport: String, Sendable { case grpc, wire }

    public var transport: Transport
    public var host: String
    public var port: Int

    public init(transport: Transport, host: String, port: Int) {
        self.transport = transport
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws(OrderError) {
        var rest = Substring(text)
        if let colon = rest.firstIndex(of: ":"), rest[colon...].hasPrefix("://") {
            guard let transport = Transport(rawValue: String(rest[..<colon])) else {
                throw OrderError.invalidRequest("cell endpoint \(text): the scheme must be wire:// or grpc://")
            }
            self.transport = transport
            rest = rest[rest.index(colon, offsetBy: 3)...]
        } else {
            self.transport = .grpc
        }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port),
            (1...253).contains(rest[..<colon].utf8.count), !rest.contains(where: { $0.isWhitespace || $0 == "/" })
        else {
            throw OrderError.invalidRequest("cell endpoints are host:port, wire://host:port or grpc://host:port, got '\(text.prefix(64))'")
        }
        self.host = String(rest[..<colon])
        self.port = port
    }
}
