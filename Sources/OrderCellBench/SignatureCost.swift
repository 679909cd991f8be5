import Crypto
import Foundation
import NIOCore
import OrderHTTP
import OrderModel

/// What checking one signed request costs a proxy (docs/security.md): the
/// `Authorization` header parsed, the key looked up, HMAC-SHA256 over the
/// canonical string and SHA-256 over a create's body, the nonce recorded —
/// measured alone on one core, without the network or the order work.
public enum SignatureCost {
    /// Microseconds per check and per signature (a client's work: a nonce, SHA-256 of the body, HMAC-SHA256),
    /// the means over `count` distinct signed creates.
    public static func measure(count: Int = 20_000) throws -> (check: Double, sign: Double) {
        let sealer = try CredentialSealer(keyText: CredentialSealer.newKeyText())
        let (id, secret) = CredentialSealer.newKey()
        let now = Timestamp(millisecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1000))
        let key = AccessKey(id: id, role: .merchant, merchantID: "bench-0", sealedSecret: try sealer.seal(secret, keyID: id), createdAt: now)
        let authenticator = RequestAuthenticator(sealer: sealer, keys: { [id: key] })
        let clock = ContinuousClock()
        let signingStarted = clock.now
        let signingKey = RequestSignature.signingKey(secret)
        let requests = (0..<count).map { number -> (String, ByteBuffer) in
            let body = #"{"merchant_id":"bench-0","out_trade_no":"cost-\#(number)","amount":1000,"currency":"CNY"}"#
            let header = RequestSignature.authorize(
                method: "POST", path: "/v1/orders", query: "", body: Array(body.utf8), keyID: id, key: signingKey, timestamp: now.secondsSinceEpoch,
                nonce: RequestSignature.newNonce()
            )
            return (header, ByteBuffer(string: body))
        }
        let signing = clock.now - signingStarted
        let started = clock.now
        for (header, body) in requests {
            _ = try authenticator.authenticate(method: "POST", path: "/v1/orders", query: "", authorization: header, body: body, source: nil, now: now)
        }
        func microseconds(_ duration: Duration) -> Double {
            (Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12) / Double(count)
        }
        return (microseconds(clock.now - started), microseconds(signing))
    }
}
