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
/// Only a connection without TLS (`--cell-tls disable`, loopback
/// development only) has an ``anonymous`` caller; over TLS a caller without
/// a certificate naming an identity is ``unidentified`` and may call
/// nothing: a missing certificate never grants what a present one would.
public enum CellCaller: Sendable, Hashable, CustomStringConvertible {
    /// What a caller is in the deployment.
    public enum Role: String, Sendable, Hashable, CaseIterable {
        /// A proxy: the order API's calls, and an operator's drill faults it relays.
        case proxy
        /// The control plane: health probes, merchant-key index work, index-slot moves,
        /// and an operator's calls it relays.
        case control
        /// A person (or their tool) calling a cell directly: reads and drill faults, never an order's change.
        case `operator`
    }

    /// A caller on a connection without TLS: nothing is known of it.
    case anonymous
    /// A caller whose certificate names this role and name.
    case identified(Role, name: String)
    /// A caller over TLS whose certificate names no identity (or that showed none): it may do nothing.
    case unidentified(String)

    /// The role the certificate names; nil for anonymous and unidentified callers.
    public var role: Role? {
        if case .identified(let role, _) = self { return role }
        return nil
    }

    /// The name after the role ("proxy-1", "alice"); empty unless identified.
    public var name: String {
        if case .identified(_, let name) = self { return name }
        return ""
    }

    public var description: String {
        switch self {
        case .anonymous: return "anonymous"
        case .identified(let role, let name): return "\(role.rawValue)/\(name)"
        case .unidentified(let why): return "unidentified (\(why))"
        }
    }

    /// The identity URI's prefix.
    public static let uriPrefix = "spiffe://ordercell/"

    /// The identity URI of `role` and `name`, as a certificate carries it.
    public static func uri(role: Role, name: String) -> String { uriPrefix + role.rawValue + "/" + name }

    /// Whether `name` may name a caller or an operator: 1–64 of letters, digits and `._@-`.
    /// Names go into the cell service's logs: nothing else gets there from a certificate or a request.
    public static func isValidName(_ name: some StringProtocol) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "._@-".utf8.contains(byte)
            }
    }

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
            guard parts.count == 2, let role = Role(rawValue: String(parts[0])), Self.isValidName(parts[1]) else {
                self = .unidentified("an identity that names no role and name")
                return
            }
            self = .identified(role, name: String(parts[1]))
            return
        }
        self = .unidentified("a certificate without an \(Self.uriPrefix)… identity")
    }
}
