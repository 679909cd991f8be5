import NIOSSL
import OrderModel
import PostgresNIO

/// How a cell service reaches one PostgreSQL server of its cell.
public struct PostgresEndpoint: Sendable, Equatable, CustomStringConvertible {
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

    public var description: String { "\(username)@\(host):\(port)/\(database)" }
}

/// Whether connections to PostgreSQL use TLS. Chosen explicitly: the
/// client library's own default silently falls back to plaintext.
public enum PostgresTLSMode: String, Sendable, CaseIterable {
    /// Plaintext; for loopback development clusters only.
    case disable
    /// TLS with certificate and host name verification; production configs use this.
    case require

    /// The client setting: never PostgresNIO's default, which falls back to plaintext.
    public var clientTLS: PostgresClient.Configuration.TLS {
        switch self {
        case .disable: .disable
        case .require: .require(.makeClientConfiguration())
        }
    }
}

/// Settings of a cell's PostgreSQL storage.
public struct PostgresCellConfiguration: Sendable {
    public var primary: PostgresEndpoint
    /// Replicas serve `consistency=eventual` reads.
    public var replicas: [PostgresEndpoint]
    public var tls: PostgresTLSMode
    /// Connections per server.
    public var maximumConnections: Int
    /// Connections per server opened up front and never closed for being
    /// idle. A cell service keeps all of them (the default): a connection
    /// beyond this number arms an idle timer every time it is returned to
    /// the pool, which costs a timer task per query under load.
    public var minimumConnections: Int
    /// Client-side deadline of every call (queries are also bounded server-side).
    public var callTimeout: Duration
    /// Server-side `statement_timeout`.
    public var statementTimeout: Duration
    /// A replica further behind than this is taken out of reads.
    public var maximumReplicaLag: Duration

    public init(
        primary: PostgresEndpoint, replicas: [PostgresEndpoint] = [], tls: PostgresTLSMode = .require,
        maximumConnections: Int = 16, minimumConnections: Int? = nil, callTimeout: Duration = .seconds(3), statementTimeout: Duration = .seconds(2),
        maximumReplicaLag: Duration = .seconds(2)
    ) {
        self.primary = primary
        self.replicas = replicas
        self.tls = tls
        self.maximumConnections = maximumConnections
        self.minimumConnections = min(minimumConnections ?? maximumConnections, maximumConnections)
        self.callTimeout = callTimeout
        self.statementTimeout = statementTimeout
        self.maximumReplicaLag = maximumReplicaLag
    }

    func clientConfiguration(for endpoint: PostgresEndpoint, applicationName: String) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.username, password: endpoint.password,
            database: endpoint.database, tls: tls.clientTLS
        )
        let statementMilliseconds = statementTimeout.wholeMilliseconds
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(statementMilliseconds)"),
            ("lock_timeout", "\(statementMilliseconds)"),
            ("idle_in_transaction_session_timeout", "\(statementMilliseconds * 5)"),
            ("application_name", applicationName),
        ]
        configuration.options.maximumConnections = maximumConnections
        configuration.options.minimumConnections = minimumConnections
        // No keep-alive query: it arms a timer each time a connection is
        // returned to the pool. A connection that went dead while idle is
        // found by the call deadline and statement_timeout of its next query.
        configuration.options.keepAliveBehavior = nil
        configuration.options.connectTimeout = callTimeout
        return configuration
    }
}

extension PostgresEndpoint {
    /// Parses `postgres://user[:password]@host:port/database`.
    public init?(url: String) {
        guard let components = URLComponentsLite(url), components.scheme == "postgres" || components.scheme == "postgresql",
            let user = components.user, let host = components.host, !components.path.isEmpty
        else { return nil }
        self.init(host: host, port: components.port ?? 5432, database: components.path, username: user, password: components.password)
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
