import CellRouting
import OrderModel

/// `PUT /admin/merchants/{merchant_id}/notify`: where the merchant is notified.
public struct NotifyEndpointSetRequest: Codable, Sendable {
    public var url: String
    /// Allow a loopback or private-network target (refused otherwise).
    public var allowPrivateNetwork: Bool?
    /// Make a new signing secret even though the merchant has one.
    public var rotateSecret: Bool?
    public var reason: String?
    public var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey {
        case url, allowPrivateNetwork = "allow_private_network", rotateSecret = "rotate_secret", reason, expectedVersion = "expected_version"
    }

    public init(url: String, allowPrivateNetwork: Bool? = nil, rotateSecret: Bool? = nil, reason: String? = nil, expectedVersion: UInt64? = nil) {
        self.url = url
        self.allowPrivateNetwork = allowPrivateNetwork
        self.rotateSecret = rotateSecret
        self.reason = reason
        self.expectedVersion = expectedVersion
    }
}

/// A notify endpoint as operators see it: never its secret.
public struct NotifyEndpointView: Codable, Sendable, Equatable {
    public var merchantID: String
    public var url: String
    public var allowPrivateNetwork: Bool
    public var updatedAt: String
    enum CodingKeys: String, CodingKey { case merchantID = "merchant_id", url, allowPrivateNetwork = "allow_private_network", updatedAt = "updated_at" }

    public init(_ endpoint: NotifyEndpoint) {
        merchantID = endpoint.merchantID
        url = endpoint.url
        allowPrivateNetwork = endpoint.allowPrivateNetwork
        updatedAt = endpoint.updatedAt.rfc3339
    }
}

/// An endpoint set: the signing secret when one was made (shown this once), and the release.
public struct NotifyEndpointSetView: Codable, Sendable {
    public var endpoint: NotifyEndpointView
    /// The secret notifications are signed with; absent when the endpoint kept its secret.
    public var secret: String?
    public var version: UInt64
    public var author: String
}

/// `GET /admin/notify-endpoints`.
public struct NotifyEndpointListView: Codable, Sendable {
    public var notifyEndpoints: [NotifyEndpointView]
    enum CodingKeys: String, CodingKey { case notifyEndpoints = "notify_endpoints" }
}
