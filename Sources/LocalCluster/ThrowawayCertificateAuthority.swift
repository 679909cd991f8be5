import Crypto
import Foundation
import SwiftASN1
import X509

/// The local cluster's own certificate authority, made on this machine for
/// loopback: every process of a `cluster up` gets a certificate from it
/// (its listeners' and, on the cell protocol, its identity as a caller),
/// and trusts only it. Nothing outside the cluster's directory trusts it.
///
/// The CA's key stays in `<dir>/tls/ca.key` (mode 0600) so that a cluster
/// started again issues its processes new certificates from the same CA;
/// delete the directory and the CA is gone. A deployment brings its own PKI
/// instead (docs/security.md says what its certificates must carry).
public struct ThrowawayCertificateAuthority: Sendable {
    public let directory: String
    private let certificate: Certificate
    private let key: P256.Signing.PrivateKey

    /// The CA's certificate (PEM): what every process trusts.
    public var caFile: String { directory + "/ca.pem" }

    /// One issued certificate's files.
    public struct Issued: Sendable {
        public var certificateFile: String
        public var keyFile: String
    }

    /// The CA in `directory`, made there when it has none (or an expired one).
    public static func loadOrCreate(in directory: String, now: Date = Date()) throws -> ThrowawayCertificateAuthority {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let certificatePath = directory + "/ca.pem"
        let keyPath = directory + "/ca.key"
        if let pem = try? String(contentsOfFile: certificatePath, encoding: .utf8), let keyPEM = try? String(contentsOfFile: keyPath, encoding: .utf8),
            let certificate = try? Certificate(pemEncoded: pem), let key = try? P256.Signing.PrivateKey(pemRepresentation: keyPEM),
            certificate.notValidAfter > now.addingTimeInterval(7 * 86_400)
        {
            return ThrowawayCertificateAuthority(directory: directory, certificate: certificate, key: key)
        }
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("OrderCell local cluster")
            CommonName("OrderCell throwaway CA \(UUID().uuidString.prefix(8))")
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(365 * 86_400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(key)
        )
        try write(key.pemRepresentation, to: keyPath, mode: 0o600)
        try write(try certificate.serializeAsPEM().pemString, to: certificatePath, mode: 0o644)
        return ThrowawayCertificateAuthority(directory: directory, certificate: certificate, key: key)
    }

    /// Issues `name`'s certificate for loopback (127.0.0.1, ::1, localhost),
    /// good for TLS servers and clients, carrying `identity` (a URI: what a
    /// cell service reads as the caller's role and name) when given.
    /// Written to `<directory>/<name>.pem` and `.key` (0600), replacing any before.
    public func issue(_ name: String, identity: String?, now: Date = Date()) throws -> Issued {
        let key = P256.Signing.PrivateKey()
        var names: [GeneralName] = [
            .dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
            .ipAddress(ASN1OctetString(contentBytes: ArraySlice([UInt8](repeating: 0, count: 15) + [1]))),
        ]
        if let identity { names.append(.uniformResourceIdentifier(identity)) }
        let signed = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: min(certificate.notValidAfter, now.addingTimeInterval(90 * 86_400)),
            issuer: certificate.subject, subject: try DistinguishedName { CommonName(name) }, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: .init(self.key)
        )
        let files = Issued(certificateFile: "\(directory)/\(name).pem", keyFile: "\(directory)/\(name).key")
        try Self.write(key.pemRepresentation, to: files.keyFile, mode: 0o600)
        try Self.write(try signed.serializeAsPEM().pemString, to: files.certificateFile, mode: 0o644)
        return files
    }

    private static func write(_ text: String, to path: String, mode: Int) throws {
        try LocalFiles.write(text, to: path, mode: mode)
    }
}

/// Files a local cluster writes for its processes (secrets at 0600), replaced whole.
public enum LocalFiles {
    /// Writes `text` and a newline to `path` with `mode`, replacing what was there.
    public static func write(_ text: String, to path: String, mode: Int) throws {
        try? FileManager.default.removeItem(atPath: path)
        guard FileManager.default.createFile(atPath: path, contents: Data((text + "\n").utf8), attributes: [.posixPermissions: mode]) else {
            throw LocalClusterError("cannot write \(path)")
        }
    }
}
