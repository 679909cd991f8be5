import CellRouting
import Foundation
import OrderModel

/// `POST /admin/access-keys`: a new access key of the public API.
public struct AccessKeyCreateRequest: Codable, Sendable {
    /// `merchant` or `payment_service`.
    public var role: String
    /// The merchant of a merchant key.
    public var merchantID: String?
    public var reason: String?
    public var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case role, merchantID = "merchant_id", reason, expectedVersion = "expected_version" }

    public init(role: String, merchantID: String? = nil, reason: String? = nil, expectedVersion: UInt64? = nil) {
        self.role = role
        self.merchantID = merchantID
        self.reason = reason
        self.expectedVersion = expectedVersion
    }
}

/// `POST /admin/access-keys/{key_id}/rotate`: a successor, and the old key's remaining window.
public struct AccessKeyRotateRequest: Codable, Sendable {
    /// How long the old key stays accepted beside the new one (0...2 592 000 s, 30 days; default a day).
    public var overlapSeconds: Int64?
    public var reason: String?
    public var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case overlapSeconds = "overlap_seconds", reason, expectedVersion = "expected_version" }

    public init(overlapSeconds: Int64? = nil, reason: String? = nil, expectedVersion: UInt64? = nil) {
        self.overlapSeconds = overlapSeconds
        self.reason = reason
        self.expectedVersion = expectedVersion
    }
}

/// An access key as operators see it: never its secret, sealed or not.
public struct AccessKeyView: Codable, Sendable, Equatable {
    public var keyID: String
    public var role: String
    public var merchantID: String?
    public var createdAt: String
    public var expiresAt: String?
    public var revokedAt: String?
    /// `accepted`, `expired` or `revoked`, now.
    public var standing: String
    enum CodingKeys: String, CodingKey {
        case keyID = "key_id", role, merchantID = "merchant_id", createdAt = "created_at", expiresAt = "expires_at", revokedAt = "revoked_at"
        case standing
    }

    public init(_ key: AccessKey, at now: Timestamp) {
        keyID = key.id
        role = key.role.rawValue
        merchantID = key.merchantID
        createdAt = key.createdAt.rfc3339
        expiresAt = key.expiresAt?.rfc3339
        revokedAt = key.revokedAt?.rfc3339
        switch key.standing(at: now) {
        case .accepted: standing = "accepted"
        case .expired: standing = "expired"
        case .revoked: standing = "revoked"
        }
    }
}

/// `GET /admin/access-keys`.
public struct AccessKeyListView: Codable, Sendable {
    public var accessKeys: [AccessKeyView]
    enum CodingKeys: String, CodingKey { case accessKeys = "access_keys" }
}

/// A key made (created or rotated): its secret, shown this once, and the release that carries it.
public struct AccessKeyIssuedView: Codable, Sendable {
    public var key: AccessKeyView
    /// The secret: shown once, stored nowhere in the clear. Sign requests with it (docs/security.md).
    public var secret: String
    /// The key it succeeds (a rotation), now accepted until its `expires_at`.
    public var replaces: AccessKeyView?
    public var version: UInt64
    public var author: String
    enum CodingKeys: String, CodingKey { case key, secret, replaces, version, author }
}

/// A key revoked: how it stands now, and the release.
public struct AccessKeyChangeView: Codable, Sendable {
    public var key: AccessKeyView
    public var version: UInt64
    public var author: String
}
