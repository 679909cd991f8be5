import NIOSSL
import SwiftASN1
import X509

/// Who is calling a cell service, as its mutual TLS certificate says.
///
/// A caller's identity is a URI in its certificate's subject alternative
/// names, `spiffe://ordercell/<role>/<name>` (the SPIFFE form, so that an
/// operator's own PKI can issue it): `spiffe://ordercell/proxy/proxy-1`,
/// `spiffe://ordercell/control/control`, `spiffe://ordercell/operator/alice`.
/// The CA that signs it is the cell service's `--tls-ca`; a certificate of
/// another CA never completes the handshake, so a caller that gets this far
/// is one the deployment issued a certificate to.
///
/// Without mutual TLS (`--cell-tls disable`, loopback development only) a
/// caller is ``anonymous``: nothing is known of it and the cell service
/// answers it as it answered every caller before identities existed.
public struct CellCaller: Sendable, Hashable, CustomStringConvertible {
    /// What a caller is in the deployment.
    public enum Role: String, Sendable, Hashable, CaseIterable {
        /// A proxy: the order API's calls, and an operator's drill faults it relays.
        case proxy
        /// The control plane: health probes, index-slot moves, and an operator's calls it relays.
        case control
        /// A person (or their tool) calling a cell directly: reads and drill faults, never an order's change.
        case `operator`
    }

    /// nil: anonymous (no mutual TLS).
    public let role: Role?
    /// The name after the role in the identity URI ("proxy-1", "alice"); empty when anonymous.
    public let name: String

    public init(role: Role, name: String) {
        self.role = role
        self.name = name
    }

    private init(unidentifiedBecause why: String) {
        role = nil
        name = why
    }

    /// A caller on a connection without mutual TLS.
    public static let anonymous = CellCaller(unidentifiedBecause: "")

    /// A caller whose certificate names no OrderCell identity: it chains to
    /// the trusted CA, so it got through the handshake, but it may do nothing.
    public static func unidentified(_ why: String) -> CellCaller { CellCaller(unidentifiedBecause: why) }

    public var isAnonymous: Bool { role == nil && name.isEmpty }

    public var description: String {
        if let role { return "\(role.rawValue)/\(name)" }
        return name.isEmpty ? "anonymous" : "unidentified (\(name))"
    }

    /// The identity URI's prefix.
    public static let uriPrefix = "spiffe://ordercell/"

    /// The identity URI of `role` and `name`, as a certificate carries it.
    public static func uri(role: Role, name: String) -> String { uriPrefix + role.rawValue + "/" + name }

    /// The caller a peer certificate names: its first `spiffe://ordercell/…` URI.
    public init(certificate: NIOSSLCertificate) {
        guard let bytes = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: bytes) else {
            self = .unidentified("an unreadable certificate")
            return
        }
        let names = (try? parsed.extensions.subjectAlternativeNames) ?? nil
        for name in names ?? SubjectAlternativeNames() {
            guard case .uniformResourceIdentifier(let uri) = name, uri.hasPrefix(Self.uriPrefix) else { continue }
            let parts = uri.dropFirst(Self.uriPrefix.count).split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let role = Role(rawValue: String(parts[0])), !parts[1].isEmpty, parts[1].count <= 64 else {
                self = .unidentified("the identity \(uri.prefix(96)) names no role")
                return
            }
            self.init(role: role, name: String(parts[1]))
            return
        }
        self = .unidentified("a certificate without an \(Self.uriPrefix)… identity")
    }
}
