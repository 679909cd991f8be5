import CellRouting
import ControlPlane
import Foundation
import OrderModel

/// The ready credentials `ordercell dev --auth` prints: a key of merchant
/// `m1` and one of the payment service. Made on the first start with
/// `--auth` and kept in the data directory (`dev-credentials.json`, mode
/// 0600: a development convenience, on loopback), so a restart prints the
/// same; made again when a key there was revoked or expired.
public struct DevCredentials: Codable, Sendable, Equatable {
    public var merchantID: String
    public var merchantKeyID: String
    public var merchantSecret: String
    public var paymentServiceKeyID: String
    public var paymentServiceSecret: String

    enum CodingKeys: String, CodingKey {
        case merchantID = "merchant_id", merchantKeyID = "merchant_key_id", merchantSecret = "merchant_secret"
        case paymentServiceKeyID = "payment_service_key_id", paymentServiceSecret = "payment_service_secret"
    }

    /// The credentials in the data directory, or new ones made there.
    public static func loadOrMake(in system: EmbeddedSystem, now: Timestamp) async throws -> DevCredentials {
        let path = URL(fileURLWithPath: system.configuration.dataDirectory).appendingPathComponent("dev-credentials.json").path
        let keys = system.control.routingTable.accessKeys
        if let data = FileManager.default.contents(atPath: path), let kept = try? JSONDecoder().decode(DevCredentials.self, from: data),
            [kept.merchantKeyID, kept.paymentServiceKeyID].allSatisfy({ keys[$0]?.standing(at: now) == .accepted })
        {
            return kept
        }
        let merchant = try await system.accessKeys.create(.merchant, merchantID: "m1", author: "dev", reason: "ordercell dev --auth: the walkthrough's merchant")
        let payer = try await system.accessKeys.create(.paymentService, merchantID: nil, author: "dev", reason: "ordercell dev --auth: the payment service")
        let made = DevCredentials(
            merchantID: "m1", merchantKeyID: merchant.key.id, merchantSecret: merchant.secret, paymentServiceKeyID: payer.key.id,
            paymentServiceSecret: payer.secret
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try? FileManager.default.removeItem(atPath: path)
        guard FileManager.default.createFile(atPath: path, contents: try encoder.encode(made), attributes: [.posixPermissions: 0o600]) else {
            throw OrderError(.internalError, "cannot write \(path)")
        }
        return made
    }
}
