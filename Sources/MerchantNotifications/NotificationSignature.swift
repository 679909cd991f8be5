import Crypto
import Foundation

/// How a merchant knows a notification is OrderCell's: the POST carries
///
///     OrderCell-Timestamp: <unix seconds>
///     OrderCell-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>" under the merchant's notification secret>
///
/// The merchant recomputes the HMAC over the timestamp header, a dot and
/// the raw body, compares in constant time, and refuses a timestamp more
/// than 5 minutes off (a replayed notification). The body's `event_id` is
/// the same on every delivery of one event: merchants deduplicate by it
/// (docs/events.md has the check in Python and in Swift).
public enum NotificationSignature {
    public static let timestampHeader = "OrderCell-Timestamp"
    public static let signatureHeader = "OrderCell-Signature"
    public static let version = "v1"

    /// The `OrderCell-Signature` value of `body` sent at `timestamp`.
    public static func sign(body: some DataProtocol, timestamp: Int64, secret: String) -> String {
        var message = Data("\(timestamp).".utf8)
        message.append(contentsOf: body)
        let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Data(secret.utf8)))
        return version + "=" + code.map { byte in String(byte, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// The merchant's check: the signature matches and the timestamp is within `tolerance` of `now`.
    public static func verify(
        body: some DataProtocol, timestamp: Int64, signature: String, secret: String, now: Int64, tolerance: Int64 = 300
    ) -> Bool {
        // A window around now, not now minus the timestamp: a crafted timestamp must not overflow the check.
        let low = now > Int64.min + tolerance ? now - tolerance : Int64.min
        let high = now < Int64.max - tolerance ? now + tolerance : Int64.max
        guard (low...high).contains(timestamp) else { return false }
        let expected = Array(sign(body: body, timestamp: timestamp, secret: secret).utf8)
        let presented = Array(signature.utf8)
        guard expected.count == presented.count else { return false }
        return zip(expected, presented).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
