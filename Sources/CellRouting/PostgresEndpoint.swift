import OrderModel

/// Where one PostgreSQL server of a cell is (or the control database):
/// `postgres://user[:password]@host:port/database`.
///
/// A routing table's storage servers are these values, validated when a
/// release is made, so that nothing reading the table meets an address it
/// cannot use; in JSON each is its URL. ``description`` leaves the
/// password out, so the value may be logged.
public struct PostgresEndpoint: Sendable, Hashable, Codable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var database: String
    public var username: String
    public var password: String?

    public init(host: String, port: Int, database: String, username: String, password: String? = nil) {
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.password = password
    }

    /// Parses `postgres://user[:password]@host:port/database` (user and password may be
    /// percent-encoded, as libpq allows); the error says what is wrong, never the password.
    public init(parsing url: String) throws(OrderError) {
        guard let components = URLComponentsLite(url) else {
            throw OrderError.invalidRequest("a PostgreSQL server is postgres://user[:password]@host:port/database: this is not such a URL")
        }
        guard components.scheme == "postgres" || components.scheme == "postgresql" else {
            throw OrderError.invalidRequest("a PostgreSQL server URL starts with postgres://, not \(components.scheme.prefix(16))://")
        }
        guard let user = components.user, !user.isEmpty else {
            throw OrderError.invalidRequest("a PostgreSQL server URL names its user: postgres://user@host:port/database")
        }
        guard let host = components.host, !host.isEmpty, (1...253).contains(host.utf8.count), !host.contains(where: \.isWhitespace) else {
            throw OrderError.invalidRequest("a PostgreSQL server URL names its host: postgres://user@host:port/database")
        }
        guard !components.path.isEmpty, !components.path.contains("/") else {
            throw OrderError.invalidRequest("a PostgreSQL server URL names one database: postgres://user@host:port/database")
        }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw OrderError.invalidRequest("a PostgreSQL server's port is 1...65535, got \(port)") }
        self.init(host: host, port: port, database: components.path, username: user, password: components.password)
    }

    /// Parses `postgres://user[:password]@host:port/database`; nil when it is not such a URL.
    public init?(url: String) {
        guard let endpoint = try? PostgresEndpoint(parsing: url) else { return nil }
        self = endpoint
    }

    /// The URL, credentials percent-encoded: what the value is in JSON.
    public var url: String {
        let credentials = password.map { "\(Self.percentEncoded(username)):\(Self.percentEncoded($0))" } ?? Self.percentEncoded(username)
        return "postgres://\(credentials)@\(host):\(port)/\(database)"
    }

    public var description: String { "\(username)@\(host):\(port)/\(database)" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        do {
            self = try PostgresEndpoint(parsing: try container.decode(String.self))
        } catch let error as OrderError {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.detail)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(url)
    }

    /// `text` with every byte outside RFC 3986's unreserved set as `%XX`.
    static func percentEncoded(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                encoded.unicodeScalars.append(UnicodeScalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                encoded += "%" + String(UnicodeScalar(hex[Int(byte >> 4)])) + String(UnicodeScalar(hex[Int(byte & 0xF)]))
            }
        }
        return encoded
    }
}

/// Just enough URL parsing for PostgreSQL URLs, without Foundation.
struct URLComponentsLite {
    var scheme: String
    var user: String?
    var password: String?
    var host: String?
    var port: Int?
    var path: String

    init?(_ text: String) {
        guard let colon = text.firstIndex(of: ":"), text[colon...].hasPrefix("://") else { return nil }
        scheme = String(text[..<colon])
        var rest = text[text.index(colon, offsetBy: 3)...]
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            // As libpq does, user and password may be percent-encoded (a password holding `@`, `:` or `/`).
            if let colon = credentials.firstIndex(of: ":") {
                guard let name = Self.percentDecoded(credentials[..<colon]),
                    let secret = Self.percentDecoded(credentials[credentials.index(after: colon)...])
                else { return nil }
                user = name
                password = secret
            } else {
                guard let name = Self.percentDecoded(credentials) else { return nil }
                user = name
            }
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        path = slash < rest.endIndex ? String(rest[rest.index(after: slash)...]) : ""
        if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let number = Int(authority[authority.index(after: colon)...]) else { return nil }
            port = number
        } else {
            host = String(authority)
        }
    }

    /// `text` with each `%XX` replaced by its byte; nil when a `%` is not followed by two hex digits or the bytes are not UTF-8.
    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var utf8 = text.utf8.makeIterator()
        while let byte = utf8.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = utf8.next().flatMap(hexValue), let low = utf8.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
