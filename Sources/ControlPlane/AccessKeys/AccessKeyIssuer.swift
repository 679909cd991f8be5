import CellRouting
import OrderHTTP
import OrderModel

/// Makes, rotates and revokes the access keys of the public API as releases
/// of the control plane (docs/security.md): every change is audited like
/// any other and reaches every proxy with the push. A new key's secret is
/// sealed under the credential key before it is stored, and returned to
/// the caller this one time.
public struct AccessKeyIssuer: Sendable {
    public let control: ControlPlane
    public let sealer: CredentialSealer
    private let clock: @Sendable () -> Timestamp

    public init(control: ControlPlane, sealer: CredentialSealer, clock: @escaping @Sendable () -> Timestamp) {
        self.control = control
        self.sealer = sealer
        self.clock = clock
    }

    /// The longest a rotated key stays accepted beside its successor: 30 days.
    public static let maximumOverlapSeconds: Int64 = 2_592_000

    /// A new key for `role` (a merchant key names its merchant): the key, its secret, and the release.
    public func create(
        _ role: CallerRole, merchantID: String?, author: String, reason: String?, expectedVersion: UInt64? = nil
    ) async throws(OrderError) -> (key: AccessKey, secret: String, table: RoutingTable) {
        switch (role, merchantID) {
        case (.merchant, nil): throw OrderError.invalidRequest("a merchant key needs merchant_id")
        case (.paymentService, .some): throw OrderError.invalidRequest("the payment service's key names no merchant_id")
        default: break
        }
        let (key, secret) = try issue(role, merchantID, now: clock())
        let table = try await control.change(
            expectedVersion: expectedVersion, author: author, reason: "create access key \(key.id) for \(key.caller): \(reason ?? "no reason given")"
        ) { try $0.settingAccessKeys([key]) }
        return (key, secret, table)
    }

    /// A successor of key `id`, the old key accepted `overlapSeconds` more (both valid while callers switch).
    public func rotate(
        _ id: String, overlapSeconds: Int64, author: String, reason: String?, expectedVersion: UInt64? = nil
    ) async throws(OrderError) -> (key: AccessKey, secret: String, replaced: AccessKey, table: RoutingTable) {
        guard (0...Self.maximumOverlapSeconds).contains(overlapSeconds) else {
            throw OrderError.invalidRequest("overlap_seconds must be 0...\(Self.maximumOverlapSeconds) (30 days), got \(overlapSeconds)")
        }
        let old = try existing(id)
        let now = clock()
        let (key, secret) = try issue(old.role, old.merchantID, now: now)
        // The old key as the release being changed has it, not as read above: a revocation published meanwhile stands.
        var retired: AccessKey?
        let table = try await control.change(
            expectedVersion: expectedVersion, author: author,
            reason: "rotate access key \(old.id) of \(old.caller) to \(key.id), the old one accepted \(overlapSeconds) s more: \(reason ?? "no reason given")"
        ) { base in
            guard var retiring = base.accessKeys[id] else { throw OrderError(.notFound, "access key \(id) does not exist") }
            guard retiring.standing(at: now) == .accepted else {
                throw OrderError(.invalidState, "access key \(id) is no longer accepted: make a new key instead of rotating it")
            }
            let end = now.adding(seconds: overlapSeconds)
            retiring.expiresAt = min(retiring.expiresAt ?? end, end)
            retired = retiring
            return try base.settingAccessKeys([key, retiring])
        }
        guard let retired else { throw OrderError(.internalError, "the rotation of \(id) published no release") }
        return (key, secret, retired, table)
    }

    /// Revokes key `id` at once.
    public func revoke(
        _ id: String, author: String, reason: String?, expectedVersion: UInt64? = nil
    ) async throws(OrderError) -> (key: AccessKey, table: RoutingTable) {
        let caller = try existing(id).caller
        let now = clock()
        // Revoked as the release being changed has the key: a rotation published meanwhile keeps its expiry.
        var revoked: AccessKey?
        let table = try await control.change(
            expectedVersion: expectedVersion, author: author, reason: "revoke access key \(id) of \(caller): \(reason ?? "no reason given")"
        ) { base in
            guard var key = base.accessKeys[id] else { throw OrderError(.notFound, "access key \(id) does not exist") }
            key.revokedAt = key.revokedAt ?? now
            revoked = key
            return try base.settingAccessKeys([key])
        }
        guard let revoked else { throw OrderError(.internalError, "the revocation of \(id) published no release") }
        return (revoked, table)
    }

    private func existing(_ id: String) throws(OrderError) -> AccessKey {
        guard AccessKey.isValidID(id) else { throw OrderError.invalidRequest("key_id is ock_ and 24 hex digits, got '\(id.prefix(40))'") }
        guard let key = control.routingTable.accessKeys[id] else { throw OrderError(.notFound, "access key \(id) does not exist") }
        return key
    }

    private func issue(_ role: CallerRole, _ merchantID: String?, now: Timestamp) throws(OrderError) -> (AccessKey, String) {
        let (id, secret) = CredentialSealer.newKey()
        let key = AccessKey(id: id, role: role, merchantID: merchantID, sealedSecret: try sealer.seal(secret, keyID: id), createdAt: now)
        try key.validate()
        return (key, secret)
    }
}
