import NIOCore
import NIOSSL

/// Whether an HTTP listener (a proxy's public API, the control plane) speaks
/// TLS, chosen explicitly: production configurations require it; plaintext
/// is an explicit `disable`, for loopback (`ordercell dev`) or behind a
/// load balancer that terminates TLS on a network only it reaches.
public struct HTTPServerTLS: Sendable {
    /// nil: plaintext.
    let context: NIOSSLContext?

    public static let disabled = HTTPServerTLS(context: nil)

    /// TLS 1.2 or later with this certificate chain and key (PEM files),
    /// offering HTTP/1.1 by ALPN. A plaintext request, or a client that
    /// offers only older versions, fails the handshake and is answered
    /// nothing.
    public static func required(certificateFile: String, privateKeyFile: String) throws -> HTTPServerTLS {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: privateKeyFile, format: .pem))
        )
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        return HTTPServerTLS(context: try NIOSSLContext(configuration: configuration))
    }

    public var isEnabled: Bool { context != nil }

    /// The URL scheme of a listener with this TLS.
    public var scheme: String { isEnabled ? "https" : "http" }

    func addHandler(to channel: any Channel) throws {
        guard let context else { return }
        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
    }
}
