/// The number of a cell: the routing key written into every order id.
///
/// Cells are numbered `0...9999` (four decimal digits in the order id).
public struct CellID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The largest cell number an order id can carry.
    public static let maximum: UInt16 = 9_999

    public let rawValue: UInt16

    /// Creates a cell id, or `nil` when `rawValue` is above ``maximum``.
    public init?(_ rawValue: Int) {
        guard rawValue >= 0, rawValue <= Int(Self.maximum) else { return nil }
        self.rawValue = UInt16(rawValue)
    }

    /// Creates a cell id from a value already known to be in range.
    public init(unchecked rawValue: UInt16) {
        precondition(rawValue <= Self.maximum, "cell id out of range")
        self.rawValue = rawValue
    }

    public var description: String { String(rawValue) }

    public static func < (lhs: CellID, rhs: CellID) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension CellID: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let value = try container.decode(Int.self)
        guard let id = CellID(value) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "cell id \(value) is outside 0...9999")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Int(rawValue))
    }
}
