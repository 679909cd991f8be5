import Crypto

/// The nonces a server has accepted within the replay window: a value type,
/// its time passed in.
///
/// A nonce needs remembering only while its request's timestamp is inside
/// the window: after that the timestamp check refuses a replay by itself.
/// So nonces are kept in buckets by their request's timestamp (one a
/// minute), and a bucket goes once its newest timestamp is out of the
/// window.
///
/// What is kept of a nonce is a 128-bit digest of its key and itself, not
/// their text: 16 bytes and no allocation per entry, whatever length a
/// caller sends. A chance collision refuses one fresh request as a replay
/// with probability about n²/2¹²⁹ — nil at any count this holds.
///
/// Two bounds, so that no caller can crowd out the others: at most
/// `capacity` nonces in all, and at most `perKeyCapacity` of one access
/// key. Beyond either, new requests (of that key, or of all) are refused
/// rather than a nonce forgotten early.
struct NonceCache: Sendable {
    let windowSeconds: Int64
    let capacity: Int
    let perKeyCapacity: Int
    private var buckets: [Int64: Bucket] = [:]
    private(set) var count = 0
    /// Nonces held per access key, over every bucket.
    private var perKey: [String: Int] = [:]

    struct Digest: Hashable, Sendable {
        var high: UInt64
        var low: UInt64

        init(keyID: String, nonce: String) {
            var hash = SHA256()
            var keyID = keyID
            var nonce = nonce
            keyID.withUTF8 { hash.update(bufferPointer: UnsafeRawBufferPointer($0)) }
            hash.update(data: [0])
            nonce.withUTF8 { hash.update(bufferPointer: UnsafeRawBufferPointer($0)) }
            var high: UInt64 = 0
            var low: UInt64 = 0
            for (index, byte) in hash.finalize().prefix(16).enumerated() {
                if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
            }
            self.high = high
            self.low = low
        }
    }

    private struct Bucket: Sendable {
        var digests: Set<Digest> = []
        var perKey: [String: Int] = [:]
    }

    init(windowSeconds: Int64, capacity: Int = 4_000_000, perKeyCapacity: Int = 1_000_000) {
        self.windowSeconds = windowSeconds
        self.capacity = capacity
        self.perKeyCapacity = min(perKeyCapacity, capacity)
    }

    enum Outcome: Equatable {
        case fresh
        case replayed
        /// This key holds its quota of nonces in the window.
        case keyFull
        /// The cache holds its capacity.
        case full
    }

    /// How many nonces of `keyID` are held.
    func count(of keyID: String) -> Int { perKey[keyID] ?? 0 }

    /// Records the nonce of a request signed at `timestamp` (checked to be
    /// inside the window) with key `keyID`; whether it was new.
    mutating func insert(keyID: String, nonce: String, timestamp: Int64, now: Int64) -> Outcome {
        expire(now: now)
        let digest = Digest(keyID: keyID, nonce: nonce)
        let bucket = timestamp / 60
        // A replay carries the same timestamp, so it lands in the same bucket.
        if buckets[bucket]?.digests.contains(digest) == true { return .replayed }
        guard count < capacity else { return .full }
        guard perKey[keyID, default: 0] < perKeyCapacity else { return .keyFull }
        buckets[bucket, default: Bucket()].digests.insert(digest)
        buckets[bucket]!.perKey[keyID, default: 0] += 1
        perKey[keyID, default: 0] += 1
        count += 1
        return .fresh
    }

    /// Drops the buckets whose every timestamp is out of the window at `now`.
    private mutating func expire(now: Int64) {
        let oldestKept = (now - windowSeconds) / 60
        for bucket in buckets.keys where bucket < oldestKept {
            guard let gone = buckets.removeValue(forKey: bucket) else { continue }
            count -= gone.digests.count
            for (keyID, held) in gone.perKey {
                let left = perKey[keyID, default: 0] - held
                perKey[keyID] = left > 0 ? left : nil
            }
        }
    }
}
