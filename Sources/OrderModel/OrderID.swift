/// The order id: a fixed-length, 28-digit decimal string that carries
/// everything needed to route an order without a lookup.
///
/// ```
///  position  0   1-4    5-16           17-26        27
///            V   CCCC   YYMMDDhhmmss   SSSSSSSSSS   K
///            │   │      │              │            └ Damm check digit over digits 0-26
///            │   │      │              └ per-cell sequence, 0...9_999_999_999
///            │   │      └ creation time, UTC, second resolution, years 2000-2099
///            │   └ cell id, 0000...9999
///            └ format version, 1 (never 0, so the id never loses a leading zero)
/// ```
///
/// See `docs/order-id.md` for the reasoning behind each field and its limits.
/// The id is stored as two 14-digit halves, so it is a 16-byte value that is
/// cheap to hash, compare and copy; its text is produced on demand.
public struct OrderID: Hashable, Sendable, Comparable {
    /// Number of digits of every order id.
    public static let length = 28
    /// The only format version this build mints and parses.
    public static let currentVersion: UInt8 = 1
    /// Largest per-cell sequence number an id can carry.
    public static let maximumSequence: Int64 = 9_999_999_999
    /// First and last instant (UTC) a version-1 id can carry.
    public static let earliestTime = Timestamp(secondsSinceEpoch: 946_684_800)  // 2000-01-01T00:00:00Z
    public static let latestTime = Timestamp(secondsSinceEpoch: 4_102_444_799)  // 2099-12-31T23:59:59Z

    // Digits 0...13 and 14...27 as integers (each below 10^14).
    @usableFromInline let high: UInt64
    @usableFromInline let low: UInt64

    @usableFromInline
    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Mints the id of a new order.
    ///
    /// - Throws: ``OrderIDError`` when a field does not fit the layout.
    public init(cell: CellID, createdAt: Timestamp, sequence: Int64) throws(OrderIDError) {
        guard sequence >= 0, sequence <= Self.maximumSequence else { throw .sequenceOutOfRange(sequence) }
        guard createdAt >= Self.earliestTime, createdAt <= Self.latestTime.adding(milliseconds: 999) else {
            throw .timeOutOfRange
        }
        let civil = CivilTime(secondsSinceEpoch: createdAt.secondsSinceEpoch)
        // YYMMDDhhmmss as a 12-digit integer.
        let time = UInt64(civil.year - 2000) * 10_000_000_000
            + UInt64(civil.month) * 100_000_000
            + UInt64(civil.day) * 1_000_000
            + UInt64(civil.hour) * 10_000
            + UInt64(civil.minute) * 100
            + UInt64(civil.second)
        // Digits 0-13: V CCCC and the first 9 time digits; 14-27: last 3 time digits, sequence, check.
        let high = UInt64(Self.currentVersion) * 10_000_000_000_000
            + UInt64(cell.rawValue) * 1_000_000_000
            + time / 1000
        let lowWithoutCheck = (time % 1000) * 10_000_000_000 + UInt64(sequence)
        var interim: UInt8 = 0
        interim = Self.fold(high, digits: 14, into: interim)
        interim = Self.fold(lowWithoutCheck, digits: 13, into: interim)
        self.init(high: high, low: lowWithoutCheck * 10 + UInt64(interim))
    }

    /// Parses and validates an order id.
    ///
    /// - Throws: ``OrderIDError`` naming the first problem found.
    @inlinable
    public init(parsing text: some StringProtocol) throws(OrderIDError) {
        // Native strings are contiguous UTF-8: parse them in place, no copy.
        let parsed: Result<OrderID, OrderIDError>? = text.utf8.withContiguousStorageIfAvailable { bytes in
            do throws(OrderIDError) {
                return .success(try OrderID(parsingUTF8: bytes))
            } catch {
                return .failure(error)
            }
        }
        if let parsed {
            self = try parsed.get()
            return
        }
        var copy = String(text)
        let fallback: Result<OrderID, OrderIDError> = copy.withUTF8 { bytes in
            do throws(OrderIDError) {
                return .success(try OrderID(parsingUTF8: bytes))
            } catch {
                return .failure(error)
            }
        }
        self = try fallback.get()
    }

    /// Parses and validates an order id from its UTF-8 bytes.
    @inlinable
    public init(parsingUTF8 bytes: UnsafeBufferPointer<UInt8>) throws(OrderIDError) {
        guard bytes.count == Self.length else { throw .wrongLength(bytes.count) }
        var high: UInt64 = 0
        var low: UInt64 = 0
        var interim: UInt8 = 0
        for index in 0..<Self.length {
            let digit = bytes[index] &- 48
            guard digit < 10 else { throw .nonDigit(position: index) }
            interim = DammCheckDigit.step(interim, digit)
            if index < 14 {
                high = high &* 10 &+ UInt64(digit)
            } else {
                low = low &* 10 &+ UInt64(digit)
            }
        }
        guard interim == 0 else { throw .checkDigitMismatch }
        let version = UInt8(high / 10_000_000_000_000)
        guard version == Self.currentVersion else { throw .unsupportedVersion(version) }
        let id = OrderID(high: high, low: low)
        guard id.civilTime.isValid else { throw .invalidTime }
        self = id
    }

    @usableFromInline
    static func fold(_ value: UInt64, digits: Int, into interim: UInt8) -> UInt8 {
        var divisor: UInt64 = 1
        for _ in 1..<digits { divisor &*= 10 }
        var result = interim
        var remaining = value
        while divisor > 0 {
            result = DammCheckDigit.step(result, UInt8(truncatingIfNeeded: remaining / divisor))
            remaining %= divisor
            divisor /= 10
        }
        return result
    }

    /// The format version (digit 0).
    public var version: UInt8 { UInt8(high / 10_000_000_000_000) }

    /// The cell that holds the order (digits 1-4).
    public var cell: CellID { CellID(unchecked: UInt16((high / 1_000_000_000) % 10_000)) }

    /// The per-cell sequence number (digits 17-26).
    public var sequence: Int64 { Int64((low / 10) % 10_000_000_000) }

    /// The check digit (digit 27).
    public var checkDigit: UInt8 { UInt8(low % 10) }

    @usableFromInline
    var civilTime: CivilTime {
        let time = (high % 1_000_000_000) * 1000 + low / 100_000_000_000
        return CivilTime(
            year: 2000 + Int(time / 10_000_000_000),
            month: Int((time / 100_000_000) % 100),
            day: Int((time / 1_000_000) % 100),
            hour: Int((time / 10_000) % 100),
            minute: Int((time / 100) % 100),
            second: Int(time % 100)
        )
    }

    /// When the order was created (UTC, whole seconds).
    public var createdAt: Timestamp { Timestamp(secondsSinceEpoch: civilTime.secondsSinceEpoch) }

    public static func < (lhs: OrderID, rhs: OrderID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

extension OrderID: CustomStringConvertible, LosslessStringConvertible {
    public init?(_ description: String) {
        guard let id = try? OrderID(parsing: description) else { return nil }
        self = id
    }

    /// The 28 digits of the id.
    public var description: String {
        String(unsafeUninitializedCapacity: Self.length) { buffer in
            var h = high
            var l = low
            for index in stride(from: 13, through: 0, by: -1) {
                buffer[index] = UInt8(truncatingIfNeeded: 48 &+ h % 10)
                h /= 10
            }
            for index in stride(from: 27, through: 14, by: -1) {
                buffer[index] = UInt8(truncatingIfNeeded: 48 &+ l % 10)
                l /= 10
            }
            return Self.length
        }
    }
}

extension OrderID: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try OrderID(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Why a string is not a valid order id, or why an id cannot be minted.
public enum OrderIDError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongLength(Int)
    case nonDigit(position: Int)
    case checkDigitMismatch
    case unsupportedVersion(UInt8)
    case invalidTime
    case sequenceOutOfRange(Int64)
    case timeOutOfRange

    public var description: String {
        switch self {
        case .wrongLength(let length):
            return "an order id has exactly \(OrderID.length) digits, this one has \(length) characters"
        case .nonDigit(let position):
            return "an order id has only the digits 0-9; character \(position + 1) is not a digit"
        case .checkDigitMismatch:
            return "the check digit does not match: the order id was probably mistyped"
        case .unsupportedVersion(let version):
            return "order id version \(version) is not known to this server"
        case .invalidTime:
            return "the creation time inside the order id is not a valid UTC date and time"
        case .sequenceOutOfRange(let sequence):
            return "sequence \(sequence) does not fit in 10 digits; the cell must be sealed"
        case .timeOutOfRange:
            return "version 1 order ids carry times from 2000 to 2099 only"
        }
    }
}
