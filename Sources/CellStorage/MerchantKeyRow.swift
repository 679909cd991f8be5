import OrderModel

/// An index entry as both stores keep it: the owner as a number, the
/// holder as its id's digits, the attempt's 64 bits as a signed integer,
/// the abandoned cells as `"3,7"`.
struct MerchantKeyRow: Sendable {
    var owner: Int
    var holder: String?
    var attempt: Int64
    var abandoned: String
    var revision: Int
    var createdAt: Int64
    var updatedAt: Int64

    init(_ entry: MerchantKeyEntry) {
        owner = Int(entry.owner.rawValue)
        holder = entry.holder?.description
        attempt = Int64(bitPattern: entry.attempt)
        abandoned = entry.abandoned.map(\.description).joined(separator: ",")
        revision = entry.revision
        createdAt = entry.createdAt.millisecondsSinceEpoch
        updatedAt = entry.updatedAt.millisecondsSinceEpoch
    }

    /// Checks what was read: a stored entry that does not parse is a storage fault, never guessed at.
    init(owner: Int, holder: String?, attempt: Int64, abandoned: String, revision: Int, createdAt: Int64, updatedAt: Int64) throws {
        guard CellID(owner) != nil else { throw StoreError("merchant-key entry names cell \(owner)") }
        for part in abandoned.split(separator: ",") where Int(part).flatMap(CellID.init) == nil {
            throw StoreError("merchant-key entry names abandoned cell '\(part)'")
        }
        if let holder { _ = try Self.parse(holder) }
        self.owner = owner
        self.holder = holder
        self.attempt = attempt
        self.abandoned = abandoned
        self.revision = revision
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    func entry(for key: MerchantKey) -> MerchantKeyEntry {
        MerchantKeyEntry(
            key: key, owner: CellID(unchecked: UInt16(owner)), holder: holder.flatMap { try? Self.parse($0) },
            attempt: UInt64(bitPattern: attempt),
            abandoned: abandoned.split(separator: ",").compactMap { Int($0).flatMap(CellID.init) }, revision: revision,
            createdAt: Timestamp(millisecondsSinceEpoch: createdAt), updatedAt: Timestamp(millisecondsSinceEpoch: updatedAt)
        )
    }

    private static func parse(_ text: String) throws -> OrderID {
        do { return try OrderID(parsing: text) } catch { throw StoreError("merchant-key entry names order '\(text)': \(error)") }
    }
}
