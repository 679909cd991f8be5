/// Where a merchant is told of its orders' results (docs/events.md): the
/// URL OrderCell POSTs signed notifications to, and the secret they are
/// signed with — held only sealed under the deployment's notification key
/// (not the credential key of access keys: the cells hold this one),
/// like an access key's, and opened by the cells' notifiers.
///
/// Registered by an operator through the control plane, one per merchant,
/// as a release: audited, and pushed to every cell service.
public struct NotifyEndpoint: Sendable, Equatable, Codable {
    public var merchantID: String
    public var url: String
    /// The signing secret, sealed (AES-GCM under the notification key,
    /// bound to ``sealingID``), base64.
    public var sealedSecret: String
    /// An operator allowed a loopback or private-network target (a test
    /// receiver, a merchant inside the same network); refused otherwise.
    public var allowPrivateNetwork: Bool
    public var updatedAt: Timestamp

    public init(merchantID: String, url: String, sealedSecret: String, allowPrivateNetwork: Bool, updatedAt: Timestamp) {
        self.merchantID = merchantID
        self.url = url
        self.sealedSecret = sealedSecret
        self.allowPrivateNetwork = allowPrivateNetwork
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case merchantID = "merchant_id"
        case url
        case sealedSecret = "sealed_secret"
        case allowPrivateNetwork = "allow_private_network"
        case updatedAt = "updated_at"
    }

    /// What the secret is sealed to: a sealed secret cannot be moved onto another merchant.
    public static func sealingID(of merchantID: String) -> String { "notify:\(merchantID)" }

    /// The longest URL kept.
    public static let maximumURLLength = 2048

    /// Checks what can be checked without the URL policy: the merchant, a URL of sane length, a sealed secret.
    public func validate() throws(OrderError) {
        try RequestLimits.checkIdentifier(merchantID, field: "merchant_id", length: RequestLimits.merchantIDLength)
        guard (1...Self.maximumURLLength).contains(url.utf8.count) else {
            throw OrderError.invalidRequest("a notify URL has 1...\(Self.maximumURLLength) bytes")
        }
        guard !sealedSecret.isEmpty else { throw OrderError.invalidRequest("the notify endpoint of \(merchantID) has no sealed secret") }
    }
}
