/// A small, fast, seedable random number generator (SplitMix64).
///
/// Used to make placement deterministic: tests seed it, and the proxy seeds
/// it from the merchant's `(merchant_id, out_trade_no)` so that a retried
/// create follows the same path through the cells.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// Seeds from the bytes of `parts` (FNV-1a), separated so that `("a","bc")` ≠ `("ab","c")`.
    public init(seedingFrom parts: String...) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for part in parts {
            for byte in part.utf8 {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01b3
            }
            hash ^= 0xff
            hash &*= 0x0000_0100_0000_01b3
        }
        state = hash
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
