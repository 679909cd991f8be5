/// What a caller of the public order API is, by its access key
/// (docs/security.md).
public enum CallerRole: String, Sendable, Codable, CaseIterable {
    /// A merchant: creates, reads, closes and refunds its own orders.
    case merchant
    /// The payment service: the only caller that may pay an order; reads any order.
    case paymentService = "payment_service"
}

/// One access key of the public API: an id the caller names in its
/// requests, the role and merchant it acts as, and its secret — held only
/// sealed under the deployment's credential key, so a copy of a release, a
/// snapshot or the control database does not give it away.
///
/// A key is accepted from its creation until it is revoked, or until it
/// expires: a rotation gives the old key an expiry, so that the old and the
/// new key are both accepted while callers switch over.
public struct AccessKey: Sendable, Equatable, Codable {
    public var id: String
    public var role: CallerRole
    /// The merchant a merchant key acts as; nil for the payment service.
    public var merchantID: String?
    /// The secret, sealed (AES-GCM under the credential key), base64.
    public var sealedSecret: String
    public var createdAt: Timestamp
    /// When a rotation ends this key's acceptance.
    public var expiresAt: Timestamp?
    public var revokedAt: Timestamp?

    public init(
        id: String, role: CallerRole, merchantID: String?, sealedSecret: String, createdAt: Timestamp, expiresAt: Timestamp? = nil,
        revokedAt: Timestamp? = nil
    ) {
        self.id = id
        self.role = role
        self.merchantID = merchantID
        self.sealedSecret = sealedSecret
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, role
        case merchantID = "merchant_id"
        case sealedSecret = "sealed_secret"
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case revokedAt = "revoked_at"
    }

    /// Whether the key is accepted at `now`, and if not, why.
    public enum Standing: Sendable, Equatable {
        case accepted
        case revoked
        case expired
    }

    public func standing(at now: Timestamp) -> Standing {
        if revokedAt != nil { return .revoked }
        if let expiresAt, now >= expiresAt { return .expired }
        return .accepted
    }

    /// The caller a request signed with this key is.
    public var caller: Caller {
        switch role {
        case .merchant: return .merchant(merchantID ?? "")
        case .paymentService: return .paymentService
        }
    }

    /// Key ids: `ock_` and 24 lowercase hex digits (96 random bits).
    public static func isValidID(_ id: String) -> Bool {
        id.utf8.count == 28 && id.hasPrefix("ock_") && id.utf8.dropFirst(4).allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// Checks the key on its own: its id, and a merchant for a merchant key (none for the payment service).
    public func validate() throws(OrderError) {
        guard Self.isValidID(id) else { throw OrderError.invalidRequest("access key id \(id.prefix(40)) is not ock_ and 24 hex digits") }
        switch role {
        case .merchant:
            guard let merchantID else { throw OrderError.invalidRequest("merchant access key \(id) names no merchant") }
            try RequestLimits.checkIdentifier(merchantID, field: "merchant_id", length: RequestLimits.merchantIDLength)
        case .paymentService:
            guard merchantID == nil else { throw OrderError.invalidRequest("the payment service's key \(id) names a merchant") }
        }
        guard !sealedSecret.isEmpty else { throw OrderError.invalidRequest("access key \(id) has no sealed secret") }
    }
}

/// Who made a request of the public API.
public enum Caller: Sendable, Equatable, CustomStringConvertible {
    /// Authentication is off (`ordercell dev` without `--auth`): every caller may do everything.
    case unauthenticated
    case merchant(String)
    case paymentService

    public var description: String {
        switch self {
        case .unauthenticated: return "an unauthenticated caller"
        case .merchant(let id): return "merchant \(id)"
        case .paymentService: return "the payment service"
        }
    }
}
