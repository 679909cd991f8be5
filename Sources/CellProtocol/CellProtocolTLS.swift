import NIOCore
import NIOSSL

/// Whether a cell protocol server speaks TLS, chosen explicitly: production
/// configurations require it, and plaintext is an explicit `disable` meant
/// for loopback development clusters and tests.
public struct CellServerTLS: Sendable {
    /// nil: plaintext.
    let context: NIOSSLContext?

    /// Plaintext (loopback only: anyone on the path can read and forge calls).
    public static let disabled = CellServerTLS(context: nil)

    /// Mutual TLS with this certificate chain and key (PEM files): a client
    /// must show a certificate that chains to one of the CAs in
    /// `clientCAFile`, or its handshake fails. There is no TLS without
    /// client certificates: the cell service answers a caller by the
    /// identity its certificate names (``CellCaller``).
    public static func required(certificateFile: String, privateKeyFile: String, clientCAFile: String) throws -> CellServerTLS {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: privateKeyFile, format: .pem))
        )
        configuration.minimumTLSVersion = .tlsv12
        // A client's certificate names no host to check; that it chains to the CA is what counts.
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .file(clientCAFile)
        return CellServerTLS(context: try NIOSSLContext(configuration: configuration))
    }

    public var isEnabled: Bool { context != nil }

    func addHandler(to channel: any Channel) throws {
        guard let context else { return }
        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
    }
}

/// Whether a cell protocol client speaks TLS to the cell services, chosen
/// explicitly (see ``CellServerTLS``). A client requiring TLS never falls
/// back to plaintext: a server that does not offer it fails the handshake.
public struct CellClientTLS: Sendable {
    /// nil: plaintext.
    let context: NIOSSLContext?

    public static let disabled = CellClientTLS(context: nil)

    /// TLS, checking the server's certificate against `trustRootsFile`
    /// (PEM CAs; nil: the system's) and its host name (or IP address)
    /// against the endpoint. With `certificateFile` and `privateKeyFile`, the
    /// client shows its own certificate (mutual TLS).
    public static func required(
        trustRootsFile: String? = nil, certificateFile: String? = nil, privateKeyFile: String? = nil
    ) throws -> CellClientTLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let trustRootsFile { configuration.trustRoots = .file(trustRootsFile) }
        if let certificateFile, let privateKeyFile {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: privateKeyFile, format: .pem))
        }
        return CellClientTLS(context: try NIOSSLContext(configuration: configuration))
    }

    public var isEnabled: Bool { context != nil }

    func addHandler(to channel: any Channel, host: String) throws {
        guard let context else { return }
        // An IP address goes in no SNI; NIOSSL then checks the certificate against the peer's address.
        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : host))
    }
}
