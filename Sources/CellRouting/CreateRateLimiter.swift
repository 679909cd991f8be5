import OrderModel

/// A token bucket: `ratePerSecond` tokens flow in, up to `capacity`; each
/// admitted request takes one. Pure; time is a parameter.
public struct TokenBucket: Sendable, Equatable {
    public let ratePerSecond: Double
    public let capacity: Double
    public private(set) var tokens: Double
    private var updatedAt: Timestamp

    /// A full bucket holding `burstSeconds` of the rate (at least one token).
    public init(ratePerSecond: Double, burstSeconds: Double, now: Timestamp) {
        self.ratePerSecond = ratePerSecond
        self.capacity = max(1, ratePerSecond * burstSeconds)
        self.tokens = capacity
        self.updatedAt = now
    }

    /// Adds the tokens that flowed in since the last update.
    public mutating func refill(at now: Timestamp) {
        let elapsed = now.millisecondsSinceEpoch - updatedAt.millisecondsSinceEpoch
        guard elapsed > 0 else { return }
        tokens = min(capacity, tokens + Double(elapsed) * ratePerSecond / 1000)
        updatedAt = now
    }

    /// Whether a token is there (call ``refill(at:)`` first).
    public var hasToken: Bool { tokens >= 1 }

    public mutating func take() { tokens -= 1 }

    /// Milliseconds until the next token, for `Retry-After` (at most an hour).
    public var millisecondsUntilToken: Int64 {
        guard !hasToken else { return 0 }
        let milliseconds = ((1 - tokens) * 1000 / ratePerSecond).rounded(.up)
        return milliseconds.isFinite ? Int64(min(milliseconds, 3_600_000)) : 3_600_000
    }
}

/// What the rate limiter decided for one create.
public enum RateDecision: Sendable, Equatable {
    case admitted
    /// Refused; the client may try again after this many milliseconds.
    case refused(scope: RateLimitScope, retryAfterMilliseconds: Int64)
}

/// Which limit refused a create.
public enum RateLimitScope: Sendable, Equatable {
    case global
    case merchant(String)
}

/// The create rate limits of one proxy: a global bucket and one bucket per
/// merchant, configured from the routing release's ``RateLimits``.
///
/// A create is admitted only when every bucket that applies has a token,
/// and then takes one from each. Pure; time is a parameter.
public struct CreateRateLimiter: Sendable {
    public private(set) var limits: RateLimits
    private var global: TokenBucket?
    private var merchants: [String: TokenBucket] = [:]
    /// Merchant buckets kept at most; past it, full (idle) buckets are dropped.
    private let maximumMerchantBuckets: Int

    public init(limits: RateLimits = .init(), now: Timestamp, maximumMerchantBuckets: Int = 100_000) {
        self.limits = limits
        self.maximumMerchantBuckets = maximumMerchantBuckets
        self.global = limits.globalCreatesPerSecond.map { TokenBucket(ratePerSecond: $0, burstSeconds: limits.burstSeconds, now: now) }
    }

    /// Applies new limits; buckets start full under the new rates.
    public mutating func reconfigure(_ limits: RateLimits, now: Timestamp) {
        guard limits != self.limits else { return }
        self = CreateRateLimiter(limits: limits, now: now, maximumMerchantBuckets: maximumMerchantBuckets)
    }

    public mutating func admit(merchant: String, at now: Timestamp) -> RateDecision {
        if limits.isUnlimited { return .admitted }
        var merchantBucket: TokenBucket?
        if let rate = limits.merchantLimit(merchant) {
            var bucket = merchants[merchant] ?? TokenBucket(ratePerSecond: rate, burstSeconds: limits.burstSeconds, now: now)
            bucket.refill(at: now)
            guard bucket.hasToken else {
                merchants[merchant] = bucket
                return .refused(scope: .merchant(merchant), retryAfterMilliseconds: bucket.millisecondsUntilToken)
            }
            merchantBucket = bucket
        }
        if var bucket = global {
            bucket.refill(at: now)
            guard bucket.hasToken else {
                global = bucket
                if let merchantBucket { merchants[merchant] = merchantBucket }
                return .refused(scope: .global, retryAfterMilliseconds: bucket.millisecondsUntilToken)
            }
            bucket.take()
            global = bucket
        }
        if var bucket = merchantBucket {
            bucket.take()
            if merchants.count >= maximumMerchantBuckets, merchants[merchant] == nil { makeRoom(at: now) }
            merchants[merchant] = bucket
        }
        return .admitted
    }

    /// Keeps the merchant buckets under their cap: drops the full (idle)
    /// ones, and if that frees too little (a flood of distinct merchant ids)
    /// starts every merchant afresh, so that the scan happens at most once
    /// every `maximumMerchantBuckets / 10` new merchants. The global limit
    /// holds throughout.
    private mutating func makeRoom(at now: Timestamp) {
        merchants = merchants.filter { _, bucket in
            var bucket = bucket
            bucket.refill(at: now)
            return bucket.tokens < bucket.capacity
        }
        if merchants.count >= maximumMerchantBuckets * 9 / 10 { merchants.removeAll(keepingCapacity: true) }
    }
}
