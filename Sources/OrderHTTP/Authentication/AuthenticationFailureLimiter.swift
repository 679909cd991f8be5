import NIOCore

/// Limits failed authentication, per source and per access key: a value
/// type, its time passed in.
///
/// Each source (an IPv4 address, an IPv6 /64) and each access key has a
/// bucket of `burst` failures that refills at `refillPerSecond`. A failure
/// takes one; an empty bucket means "over the limit":
///
/// - **A source over its limit** is refused before its request is looked
///   at (`429`, with when to come back): a client that keeps failing costs
///   the proxy no signature check, and learns nothing more.
/// - **A key over its limit** still has every request checked — the holder
///   of the secret is never locked out by someone who only knows the key
///   id — but a failing request under it is answered `429` instead of its
///   precise `401`, so that guessing through many sources learns nothing
///   either, and the proxy logs the key once as under attack.
///
/// Only failures count; a source or key that stops failing is forgotten
/// once its bucket is full again. At most `maximumTracked` sources and as
/// many keys are tracked: past that, full buckets are dropped, and if none
/// is, a new one is not tracked (never refused for the others' failures).
struct AuthenticationFailureLimiter: Sendable {
    let burst: Double
    let refillPerSecond: Double
    let maximumTracked: Int
    private var sources: [Source: Bucket] = [:]
    private var keys: [String: Bucket] = [:]

    /// Where requests come from, as the limit counts them.
    enum Source: Hashable, Sendable {
        case ipv4(UInt32)
        /// The first 64 bits: one host or subnet can hold a whole /64.
        case ipv6Prefix(UInt64)
        case unknown

        /// From a peer's address; the bytes are read from the socket
        /// address's layout (sockaddr_in: family, port, then the 4 address
        /// bytes; sockaddr_in6: family, port, flow info, then the 16).
        init(_ address: SocketAddress?) {
            func bigEndian(_ bytes: some Collection<UInt8>) -> UInt64 { bytes.reduce(0) { $0 << 8 | UInt64($1) } }
            switch address {
            case .v4(let v4):
                self = .ipv4(UInt32(withUnsafeBytes(of: v4.address) { bigEndian($0[4..<8]) }))
            case .v6(let v6):
                self = .ipv6Prefix(withUnsafeBytes(of: v6.address) { bigEndian($0[8..<16]) })
            default:
                self = .unknown
            }
        }
    }

    private struct Bucket: Sendable {
        var tokens: Double
        var at: Double

        mutating func refill(now: Double, burst: Double, perSecond: Double) {
            tokens = min(burst, tokens + max(0, now - at) * perSecond)
            at = now
        }
    }

    init(burst: Int = 20, refillPerSecond: Double = 1, maximumTracked: Int = 100_000) {
        self.burst = Double(burst)
        self.refillPerSecond = refillPerSecond
        self.maximumTracked = maximumTracked
    }

    /// Seconds until `source` may try again; nil: it may now.
    mutating func sourceRetryAfter(_ source: Source, now: Double) -> Int? {
        Self.retryAfter(&sources, source, now: now, burst: burst, perSecond: refillPerSecond)
    }

    /// Whether failures under `keyID` are over its limit now.
    mutating func keyIsOverLimit(_ keyID: String, now: Double) -> Bool {
        Self.retryAfter(&keys, keyID, now: now, burst: burst, perSecond: refillPerSecond) != nil
    }

    /// Counts a failed authentication of `source` (under `keyID`, when the
    /// request named an existing key); whether the key just went over its limit.
    @discardableResult
    mutating func recordFailure(source: Source, keyID: String?, now: Double) -> Bool {
        Self.take(&sources, source, now: now, burst: burst, perSecond: refillPerSecond, limit: maximumTracked)
        guard let keyID else { return false }
        let wasOver = keyIsOverLimit(keyID, now: now)
        Self.take(&keys, keyID, now: now, burst: burst, perSecond: refillPerSecond, limit: maximumTracked)
        return !wasOver && keyIsOverLimit(keyID, now: now)
    }

    private static func retryAfter<Key: Hashable>(
        _ buckets: inout [Key: Bucket], _ key: Key, now: Double, burst: Double, perSecond: Double
    ) -> Int? {
        guard var bucket = buckets[key] else { return nil }
        bucket.refill(now: now, burst: burst, perSecond: perSecond)
        buckets[key] = bucket
        guard bucket.tokens < 1 else { return nil }
        return max(1, Int(((1 - bucket.tokens) / perSecond).rounded(.up)))
    }

    private static func take<Key: Hashable>(
        _ buckets: inout [Key: Bucket], _ key: Key, now: Double, burst: Double, perSecond: Double, limit: Int
    ) {
        if buckets[key] == nil {
            if buckets.count >= limit {
                // Whoever has stopped failing is forgotten first.
                buckets = buckets.filter { _, bucket in bucket.tokens + max(0, now - bucket.at) * perSecond < burst }
                guard buckets.count < limit else { return }
            }
            buckets[key] = Bucket(tokens: burst, at: now)
        }
        buckets[key]!.refill(now: now, burst: burst, perSecond: perSecond)
        buckets[key]!.tokens = max(0, buckets[key]!.tokens - 1)
    }
}
