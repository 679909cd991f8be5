/// A merchant's own number for an order: `(merchant_id, out_trade_no)`,
/// unique across all cells (docs/merchant-keys.md).
public struct MerchantKey: Hashable, Sendable, CustomStringConvertible {
    public var merchantID: String
    public var outTradeNo: String

    public init(merchantID: String, outTradeNo: String) {
        self.merchantID = merchantID
        self.outTradeNo = outTradeNo
    }

    public var description: String { "\(merchantID)/\(outTradeNo)" }

    /// Slots of the merchant-key index: enough to spread over many cells
    /// and to move a small share at a time, few enough to list in a routing
    /// release. Never changes: entries live where it says.
    public static let indexSlotCount = 256

    /// The index slot that holds this key's entry.
    public var indexSlot: Int { slot(of: Self.indexSlotCount) }

    /// The index slot that holds this key's entry, of `slotCount`.
    ///
    /// FNV-1a over the two fields with a separator byte no identifier may
    /// contain, then MurmurHash3's 64-bit finalizer: stable across
    /// processes, builds and machines (Swift's `Hasher` is seeded per process
    /// and cannot be used), and spreading keys that differ in one character
    /// evenly over the slots.
    public func slot(of slotCount: Int) -> Int {
        precondition(slotCount > 0, "an index has at least one slot")
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        for byte in merchantID.utf8 { mix(byte) }
        mix(0)
        for byte in outTradeNo.utf8 { mix(byte) }
        // FNV-1a alone spreads keys that differ in their last characters
        // badly ("demo-1", "demo-2", …: forty such keys fell in one quarter
        // of the slots); MurmurHash3's finalizer mixes every bit into every other.
        hash ^= hash >> 33
        hash &*= 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        hash &*= 0xc4ce_b9fe_1a85_ec53
        hash ^= hash >> 33
        return Int(hash % UInt64(slotCount))
    }
}

/// Where an order stands with the merchant-key index.
///
/// Only an order that holds its key may be paid: at most one order per
/// merchant key is ever payable, whatever the index saw of the creates.
public enum MerchantKeyStatus: String, Sendable, Codable, CaseIterable {
    /// Created in the cell its key was reserved for: it holds the key once
    /// claimed (the first pay claims it).
    case reserved = "RESERVED"
    /// Claimed in the index: this order holds its key; pays go straight through.
    case verified = "VERIFIED"
    /// Created while its key's index slot could not be reached (the
    /// `available` policy): once the slot answers, its first pay or the
    /// reconciler claims the key for it (or the reconciler closes it as a
    /// duplicate); it cannot be paid before.
    case unindexed = "UNINDEXED"
    /// Another order holds its key: it was (or is being) closed with reason `DUPLICATE`.
    case duplicate = "DUPLICATE"
}
