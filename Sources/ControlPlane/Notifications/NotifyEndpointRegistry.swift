import CellRouting
import MerchantNotifications
import OrderHTTP
import OrderModel

/// Registers, changes and removes merchants' notify endpoints as releases
/// of the control plane (docs/events.md): audited like every change, and
/// pushed to every cell service, whose notifier sends by the release it
/// follows. The URL is checked against ``NotifyURLPolicy`` here, and the
/// addresses it resolves to again by the notifier at every attempt.
///
/// The signing secret is made here, sealed under the notification key before
/// it is stored, and shown to the operator once: when the endpoint is first
/// registered, or when it is asked for anew (`rotate_secret`).
public struct NotifyEndpointRegistry: Sendable {
    public let control: ControlPlane
    public let sealer: CredentialSealer
    private let clock: @Sendable () -> Timestamp

    public init(control: ControlPlane, sealer: CredentialSealer, clock: @escaping @Sendable () -> Timestamp) {
        self.control = control
        self.sealer = sealer
        self.clock = clock
    }

    /// Sets `merchantID`'s endpoint to `url`: the endpoint, the new secret
    /// if one was made (a first registration, or `rotateSecret`), and the release.
    public func set(
        merchantID: String, url: String, allowPrivateNetwork: Bool, rotateSecret: Bool, author: String, reason: String?, expectedVersion: UInt64? = nil
    ) async throws(OrderError) -> (endpoint: NotifyEndpoint, secret: String?, table: RoutingTable) {
        try RequestLimits.checkIdentifier(merchantID, field: "merchant_id", length: RequestLimits.merchantIDLength)
        guard url.utf8.count <= NotifyEndpoint.maximumURLLength else {
            throw OrderError.invalidRequest("a notify URL has at most \(NotifyEndpoint.maximumURLLength) bytes")
        }
        _ = try NotifyURLPolicy(allowPrivateNetworks: allowPrivateNetwork).check(url)
        let fresh = Self.newSecret()
        let sealedFresh = try sealer.seal(fresh, keyID: NotifyEndpoint.sealingID(of: merchantID))
        let now = clock()
        var made: (NotifyEndpoint, String?)?
        let table = try await control.change(
            expectedVersion: expectedVersion, author: author,
            reason: "set the notify endpoint of merchant \(merchantID) to \(url)\(allowPrivateNetwork ? " (private network allowed)" : "")"
                + "\(rotateSecret ? ", new secret" : ""): \(reason ?? "no reason given")"
        ) { base in
            // The secret as the release being changed has it: a rotation published meanwhile stands.
            let existing = base.notifyEndpoints[merchantID]
            let keepsSecret = existing != nil && !rotateSecret
            let endpoint = NotifyEndpoint(
                merchantID: merchantID, url: url, sealedSecret: keepsSecret ? existing!.sealedSecret : sealedFresh,
                allowPrivateNetwork: allowPrivateNetwork, updatedAt: now
            )
            made = (endpoint, keepsSecret ? nil : fresh)
            return try base.settingNotifyEndpoint(endpoint)
        }
        guard let made else { throw OrderError(.internalError, "setting the notify endpoint of \(merchantID) published no release") }
        return (made.0, made.1, table)
    }

    /// A new signing secret: `ocn_` and 43 base64url characters (256 random bits).
    static func newSecret() -> String {
        "ocn_" + String(CredentialSealer.newKey().secret.dropFirst(4))
    }
}
