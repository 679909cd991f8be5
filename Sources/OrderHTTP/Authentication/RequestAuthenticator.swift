import Crypto
import Foundation
import Logging
import NIOCore
import OrderModel
import Synchronization

/// Checks the signature of a request to the public API and says who made
/// it (docs/security.md): the access key must exist and be accepted now,
/// the timestamp be within ``RequestSignature/windowSeconds`` of the
/// server's clock, the signature match, and the nonce be new. Each failure
/// is its own `401` code.
///
/// The keys come from the routing release this server follows, so a key
/// made, rotated or revoked reaches every proxy with the push. Nonces are
/// remembered per server: a request replayed through another proxy within
/// the window is not caught here, and every call it could repeat is
/// idempotent by the caller's own ids (`out_trade_no`, `payment_id`,
/// `refund_id`) — it changes nothing the first did not.
///
/// Failed authentication is limited per source and per key
/// (``AuthenticationFailureLimiter``), and nonces per key (``NonceCache``):
/// no caller can make the proxy check signatures for it without end, nor
/// crowd out another's requests.
public final class RequestAuthenticator: Sendable {
    private let sealer: CredentialSealer
    private let keys: @Sendable () -> [String: AccessKey]
    private let nonces: Mutex<NonceCache>
    private let failures: Mutex<AuthenticationFailureLimiter>
    private let logger: Logger
    /// Opened secrets by key id, with the sealed text they came from (a new seal opens again).
    private let opened = Mutex<[String: (sealed: String, key: SymmetricKey)]>([:])

    public init(sealer: CredentialSealer, keys: @escaping @Sendable () -> [String: AccessKey], logger: Logger = Logger(label: "ordercell.authentication")) {
        self.sealer = sealer
        self.keys = keys
        self.logger = logger
        self.nonces = Mutex(NonceCache(windowSeconds: RequestSignature.windowSeconds))
        self.failures = Mutex(AuthenticationFailureLimiter())
    }

    /// The caller of a request from `source` (its peer address), or the precise refusal.
    public func authenticate(
        method: String, path: String, query: String, authorization: String?, body: ByteBuffer, source: SocketAddress?, now: Timestamp
    ) throws(OrderError) -> Caller {
        var keyID: String?
        var signed = false
        do {
            return try check(
                method: method, path: path, query: query, authorization: authorization, body: body, now: now, keyID: &keyID, signed: &signed
            )
        } catch where !signed {
            // A failure of a caller without the secret: counted, and past the limit answered 429.
            let verdict = failures.withLock {
                $0.recordFailure(source: AuthenticationFailureLimiter.Source(source), keyID: keyID, now: Double(now.millisecondsSinceEpoch) / 1000)
            }
            if verdict.keyWentOver, let keyID {
                logger.warning("failed authentications under one access key are over the limit: answered 429 until they stop", metadata: ["key_id": "\(keyID)"])
            }
            if let wait = verdict.retryAfter {
                throw OrderError(.rateLimited, "too many failed authentications; try again in \(wait) s", retryAfterSeconds: wait)
            }
            throw error
        }
    }

    /// The checks, in an order that reveals nothing to a caller who does not
    /// hold the key's secret: the signature before the timestamp's window,
    /// the key's standing and the nonce. `keyID` is set once the request
    /// names a key that exists, `signed` once its signature checks out.
    private func check(
        method: String, path: String, query: String, authorization: String?, body: ByteBuffer, now: Timestamp, keyID: inout String?,
        signed: inout Bool
    ) throws(OrderError) -> Caller {
        guard let authorization else {
            throw OrderError(.unauthorized, "the public API needs a signed request: 'Authorization: \(RequestSignature.scheme) …' (docs/security.md)")
        }
        let header = try SignedRequestHeader(parsing: authorization)
        guard let key = keys()[header.keyID] else { throw OrderError(.unknownKey, "access key \(header.keyID) does not exist") }
        keyID = key.id
        let canonical = RequestSignature.canonical(
            method: method, path: path, query: query, timestamp: header.timestamp, nonce: header.nonce,
            bodySHA256: RequestSignature.bodySHA256(body.readableBytesView)
        )
        guard HMAC<SHA256>.isValidAuthenticationCode(header.signature, authenticating: Data(canonical.utf8), using: try secret(of: key)) else {
            throw OrderError(
                .signatureMismatch, "the signature does not match the request (method, path, query, timestamp, nonce and body) under key \(key.id)"
            )
        }
        signed = true
        let skew = header.timestamp - now.secondsSinceEpoch
        guard abs(skew) <= RequestSignature.windowSeconds else {
            throw OrderError(
                .timestampOutOfWindow,
                "the request's timestamp is \(abs(skew)) s \(skew < 0 ? "behind" : "ahead of") the server's clock; the window is \(RequestSignature.windowSeconds) s"
            )
        }
        // Only the holder of the secret learns that a key was revoked or has expired.
        switch key.standing(at: now) {
        case .accepted: break
        case .revoked: throw OrderError(.keyRevoked, "access key \(key.id) was revoked")
        case .expired: throw OrderError(.keyExpired, "access key \(key.id) was rotated and its window ended; sign with its successor")
        }
        switch nonces.withLock({ $0.insert(keyID: key.id, nonce: header.nonce, timestamp: header.timestamp, now: now.secondsSinceEpoch) }) {
        case .fresh: break
        case .replayed: throw OrderError(.nonceReplayed, "nonce \(header.nonce) was used with key \(key.id) within the last \(RequestSignature.windowSeconds) s")
        case .keyFull:
            throw OrderError(.rateLimited, "too many signed requests under key \(key.id) within the replay window", retryAfterSeconds: 1)
        case .full: throw OrderError(.rateLimited, "too many signed requests within the replay window", retryAfterSeconds: 1)
        }
        return key.caller
    }

    private func secret(of key: AccessKey) throws(OrderError) -> SymmetricKey {
        if let cached = opened.withLock({ $0[key.id] }), cached.sealed == key.sealedSecret { return cached.key }
        let secret = SymmetricKey(data: Data(try sealer.open(key.sealedSecret, keyID: key.id).utf8))
        opened.withLock { $0[key.id] = (key.sealedSecret, secret) }
        return secret
    }
}
