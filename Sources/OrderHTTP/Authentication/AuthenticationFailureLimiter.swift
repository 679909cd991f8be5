import NIOCore

/// Limits failed authentication, per source and per access key: a value
/// type, its time passed in.
///
/// Each source (an IPv4 address, an IPv6 /64) and each access key has a
/// bucket of `burst` failures that refills at `refillPerSecond`. A failure
/// takes one from its source's and its key's; a failure that finds either
/// empty is answered `429` with when to come back (when it holds one
/// again), instead of its precise `401`: whoever keeps guessing learns
/// nothing more, from however many sources. So `burst` failures are
/// answered as they are, then one more per `1 / refillPerSecond` seconds.
///
/// Only failures of callers who do not hold the key's secret count (a
/// request without a valid signature); a request with a valid signature is
/// never refused by this limit. So a client behind the same load balancer
/// or NAT as an attacker is still served, as is the holder of a key whose
/// id an attacker knows. What a failure costs the proxy — one HMAC-SHA256
/// over a short text, about 6 µs — is less than the HTTP parsing around
/// it: refusing before the check would buy little and lock out the
/// innocent.
///
/// A source or key that stops failing is forgotten once its bucket is full
/// again. At most `maximumTracked` of each are tracked: past that, full
/// buckets are dropped (at most once a second, so that a flood of new
/// sources costs no more than that), and a new one is not tracked until
/// there is room — never refused for the others' failures.
struct AuthenticationFailureLimiter: Sendable {
    let burst: Double
    let refillPerSecond: Double
    let maximumTracked: Int
    private var sources: Buckets<Source>
    private var keys: Buckets<String>
    /// Keys whose last failure was over the limit: a key is logged once as it goes over.
    private var keysOverLimit: Set<String> = []

    /// Where requests come from, as the limit counts them.
    enum Source: Hashable, Sendable {
        case ipv4(UInt32)
        /// The first 64 bits: one host or subnet can hold a whole /64.
        case ipv6Prefix(UInt64)
        case unknown

        /// From a peer's address; the bytes are read from the socket
        /// address's layout (sockaddr_in: family, port, then the 4 address
        /// bytes; sockaddr_in6: family, port, flow info, then the 16). An
        /// IPv4 client of a dual-stack listener (`::ffff:a.b.c.d`) is its IPv4 address.
        init(_ address: SocketAddress?) {
            func bigEndian(_ bytes: some Collection<UInt8>) -> UInt64 { bytes.reduce(0) { $0 << 8 | UInt64($1) } }
            switch address {
            case .v4(let v4):
                self = .ipv4(UInt32(withUnsafeBytes(of: v4.address) { bigEndian($0[4..<8]) }))
            case .v6(let v6):
                let (prefix, rest) = withUnsafeBytes(of: v6.address) { (bigEndian($0[8..<16]), bigEndian($0[16..<24])) }
                if prefix == 0, rest >> 32 == 0xFFFF {
                    self = .ipv4(UInt32(truncatingIfNeeded: rest))
                } else {
                    self = .ipv6Prefix(prefix)
                }
            default:
                self = .unknown
            }
        }
    }

    private struct Bucket: Sendable {
        var tokens: Double
        var at: Double

        func tokens(at now: Double, burst: Double, perSecond: Double) -> Double {
            min(burst, tokens + max(0, now - at) * perSecond)
        }
    }

    /// The buckets of one kind, with when full ones were last dropped.
    private struct Buckets<Key: Hashable & Sendable>: Sendable {
        var buckets: [Key: Bucket] = [:]
        var prunedAt = -Double.infinity
    }

    init(burst: Int = 20, refillPerSecond: Double = 1, maximumTracked: Int = 100_000) {
        self.burst = Double(burst)
        self.refillPerSecond = refillPerSecond
        self.maximumTracked = maximumTracked
        sources = Buckets()
        keys = Buckets()
    }

    /// What a failure comes to.
    struct Verdict: Equatable {
        /// Seconds until the source and key may fail again; nil: the failure is answered as it is.
        var retryAfter: Int?
        /// The key went over its limit with this failure (log it once).
        var keyWentOver: Bool
    }

    /// Counts a failed authentication of `source` (under `keyID`, when the
    /// request named an existing key).
    mutating func recordFailure(source: Source, keyID: String?, now: Double) -> Verdict {
        let sourceWait = take(&sources, source, now: now)
        guard let keyID else { return Verdict(retryAfter: sourceWait, keyWentOver: false) }
        let keyWasOver = keysOverLimit.contains(keyID)
        let keyWait = take(&keys, keyID, now: now)
        if keyWait == nil { keysOverLimit.remove(keyID) } else { keysOverLimit.insert(keyID) }
        let waits = [sourceWait, keyWait].compactMap { $0 }
        return Verdict(retryAfter: waits.max(), keyWentOver: keyWait != nil && !keyWasOver)
    }

    /// Takes a failure from `key`'s bucket; when it was already empty, seconds until it holds one again.
    private func take<Key>(_ kind: inout Buckets<Key>, _ key: Key, now: Double) -> Int? {
        if kind.buckets[key] == nil {
            if kind.buckets.count >= maximumTracked, now - kind.prunedAt >= 1 {
                // Whoever has stopped failing is forgotten first.
                kind.buckets = kind.buckets.filter { $0.value.tokens(at: now, burst: burst, perSecond: refillPerSecond) < burst }
                kind.prunedAt = now
            }
            guard kind.buckets.count < maximumTracked else { return nil }
            kind.buckets[key] = Bucket(tokens: burst, at: now)
        }
        var bucket = kind.buckets[key]!
        bucket.tokens = bucket.tokens(at: now, burst: burst, perSecond: refillPerSecond)
        bucket.at = now
        defer { kind.buckets[key] = bucket }
        guard bucket.tokens >= 1 else { return max(1, Int(((1 - bucket.tokens) / refillPerSecond).rounded(.up))) }
        bucket.tokens -= 1
        return nil
    }
}
