/// The nonces a server has accepted within the replay window: a value type,
/// its time passed in.
///
/// A nonce needs remembering only while its request's timestamp is inside
/// the window: after that the timestamp check refuses a replay by itself.
/// So nonces are kept in buckets by their request's timestamp (one a
/// minute), and a bucket goes once its newest timestamp is out of the
/// window. At most `capacity` nonces are held; beyond that new requests
/// are refused rather than forgetting a nonce early.
struct NonceCache: Sendable {
    let windowSeconds: Int64
    let capacity: Int
    private var buckets: [Int64: Set<NonceKey>] = [:]
    private(set) var count = 0

    struct NonceKey: Hashable, Sendable {
        var keyID: String
        var nonce: String
    }

    init(windowSeconds: Int64, capacity: Int = 4_000_000) {
        self.windowSeconds = windowSeconds
        self.capacity = capacity
    }

    enum Outcome: Equatable {
        case fresh
        case replayed
        case full
    }

    /// Records the nonce of a request signed at `timestamp` (checked to be
    /// inside the window) with key `keyID`; whether it was new.
    mutating func insert(keyID: String, nonce: String, timestamp: Int64, now: Int64) -> Outcome {
        expire(now: now)
        let key = NonceKey(keyID: keyID, nonce: nonce)
        let bucket = timestamp / 60
        // A replay carries the same timestamp, so it lands in the same bucket.
        if buckets[bucket]?.contains(key) == true { return .replayed }
        guard count < capacity else { return .full }
        buckets[bucket, default: []].insert(key)
        count += 1
        return .fresh
    }

    /// Drops the buckets whose every timestamp is out of the window at `now`.
    private mutating func expire(now: Int64) {
        let oldestKept = (now - windowSeconds) / 60
        for bucket in buckets.keys where bucket < oldestKept {
            count -= buckets.removeValue(forKey: bucket)?.count ?? 0
        }
    }
}
