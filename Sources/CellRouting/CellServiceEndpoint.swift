import OrderModel

/// Where a cell service instance serves the cell protocol: `host:port`.
///
/// Validated when it is made, so a routing table never holds an address
/// that fails later; it travels in JSON as the string `host:port`.
/// (Releases written before the cell protocol was the only one may hold
/// `wire://host:port`, which reads as `host:port`.)
public struct CellServiceEndpoint: Sendable, Hashable, Codable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws(OrderError) {
        var rest = Substring(text)
        if rest.hasPrefix("wire://") { rest = rest.dropFirst("wire://".count) }
        if rest.contains("://") {
            throw OrderError.invalidRequest(
                "cell endpoint '\(text.prefix(64))': a cell endpoint is host:port (the cell protocol), without a scheme"
            )
        }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port),
            (1...253).contains(rest[..<colon].utf8.count), !rest.contains(where: { $0.isWhitespace || $0 == "/" })
        else {
            throw OrderError.invalidRequest("a cell endpoint is host:port with a port 1...65535, got '\(text.prefix(64))'")
        }
        self.host = String(rest[..<colon])
        self.port = port
    }

    public var description: String { "\(host):\(port)" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try CellServiceEndpoint(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.detail)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
