import PostgresNIO

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
