import AsyncHTTPClient
import NIOSSL
import Synchronization

/// HTTP clients of OrderCell's own HTTPS listeners (the control plane, the
/// proxies), trusting the deployment's CA rather than the system's.
///
/// Whether a call uses TLS is its URL's scheme, chosen by the operator:
/// an `https://` URL is never tried in plaintext. AsyncHTTPClient checks the
/// server's certificate against the URL's host name or IP address.
public enum TrustedHTTPClients {
    /// One client per CA file, made once and kept for the process's life: an
    /// `HTTPClient` must be shut down before it is released, and these never
    /// are (like `HTTPClient.shared`).
    private static let clients = Mutex<[String: HTTPClient]>([:])

    /// `HTTPClient.shared` (the system's trust roots) without `caFile`;
    /// otherwise the client that trusts only the CAs in that PEM file.
    public static func trusting(caFile: String?) throws -> HTTPClient {
        guard let caFile else { return .shared }
        return try clients.withLock { clients in
            if let client = clients[caFile] { return client }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            var configuration = HTTPClient.Configuration.singletonConfiguration
            configuration.tlsConfiguration = tls
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            clients[caFile] = client
            return client
        }
    }
}
