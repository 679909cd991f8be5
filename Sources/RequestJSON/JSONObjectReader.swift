import NIOCore
import OrderModel

/// Reads the top-level members of a JSON object straight from a request
/// body's bytes, and hands them out as strings and 64-bit integers with the
/// API's precise `invalid_request` messages.
///
/// The whole body is checked once, strictly (RFC 8259, UTF-8 only): a body
/// that is not JSON is refused with "the request body is not valid JSON",
/// JSON that is not an object with "the request body must be a JSON object".
/// Then members are looked up by name, in the order the caller asks for
/// them, so the first missing or mistyped field is the one reported:
///
/// - unknown members are ignored (their values are still checked as JSON);
/// - when a name appears twice, the first member wins, as with `JSONDecoder`;
/// - `null` counts as absent for the `…IfPresent` readers;
/// - an integer field takes any JSON number whose value is an integer that
///   fits in `Int64`: `1`, `-0`, `1.0`, `1e3` and `100e-2` are integers,
///   `1.5` and `1e19` are not;
/// - nesting deeper than ``maximumDepth`` is refused, like `JSONDecoder`;
/// - a leading UTF-8 byte order mark is skipped, like `JSONDecoder`.
public struct JSONObjectReader {
    /// The deepest nesting of objects and arrays accepted, the top-level
    /// object included (`JSONDecoder`'s limit).
    public static let maximumDepth = 512

    private let bytes: ByteBuffer
    private let members: [Member]
    /// The decoded names of members whose keys hold escapes, by member index
    /// (empty when no key does): decoded once, not at every lookup.
    private let escapedKeys: [String?]

    /// Checks `bytes` and indexes the members of the object they hold.
    public init(_ bytes: ByteBuffer) throws(OrderError) {
        let outcome = bytes.withUnsafeReadableBytes { raw in
            var scanner = Scanner(raw)
            return scanner.document()
        }
        switch outcome {
        case .object(let members):
            self.bytes = bytes
            self.members = members
            self.escapedKeys =
                members.contains(where: \.isKeyEscaped)
                ? bytes.withUnsafeReadableBytes { raw in
                    members.map { $0.isKeyEscaped ? JSONStringDecoder.decode(UnsafeRawBufferPointer(rebasing: raw[$0.key])) : nil }
                } : []
        case .notAnObject:
            throw .invalidRequest(Message.notAnObject)
        case .invalid:
            throw .invalidRequest(Message.notJSON)
        }
    }

    /// The string member `name`; absent or `null` is refused.
    public func string(_ name: String) throws(OrderError) -> String {
        guard let value = value(of: name) else { throw .invalidRequest("\(name) is required") }
        guard let string = try string(from: value, name) else { throw .invalidRequest("\(name) must not be null") }
        return string
    }

    /// The string member `name`, or `nil` when it is absent or `null`.
    public func stringIfPresent(_ name: String) throws(OrderError) -> String? {
        guard let value = value(of: name) else { return nil }
        return try string(from: value, name)
    }

    /// The integer member `name`; absent or `null` is refused. `unit`, when
    /// given, is named in the refusal of a fraction or an out-of-range value
    /// ("amount must be an integer (minor units) that fits in 64 bits").
    public func int64(_ name: String, unit: String? = nil) throws(OrderError) -> Int64 {
        guard let value = value(of: name) else { throw .invalidRequest("\(name) is required") }
        guard let integer = try int64(from: value, name, unit: unit) else { throw .invalidRequest("\(name) must not be null") }
        return integer
    }

    /// The integer member `name`, or `nil` when it is absent or `null`.
    public func int64IfPresent(_ name: String, unit: String? = nil) throws(OrderError) -> Int64? {
        guard let value = value(of: name) else { return nil }
        return try int64(from: value, name, unit: unit)
    }

    // MARK: - Values

    /// A string, `nil` for `null`, or the type-mismatch refusal.
    private func string(from value: Value, _ name: String) throws(OrderError) -> String? {
        switch value.kind {
        case .null:
            return nil
        case .string where !value.isEscaped:
            return bytes.getString(at: bytes.readerIndex + value.range.lowerBound, length: value.range.count) ?? ""
        case .string:
            return bytes.withUnsafeReadableBytes { raw in
                JSONStringDecoder.decode(UnsafeRawBufferPointer(rebasing: raw[value.range]))
            }
        default:
            throw .invalidRequest("\(name) must be a string")
        }
    }

    /// An integer, `nil` for `null`, or the type-mismatch or range refusal.
    private func int64(from value: Value, _ name: String, unit: String?) throws(OrderError) -> Int64? {
        switch value.kind {
        case .null:
            return nil
        case .number:
            let integer = bytes.withUnsafeReadableBytes { raw in
                JSONNumber.int64(UnsafeRawBufferPointer(rebasing: raw[value.range]))
            }
            guard let integer else {
                throw .invalidRequest("\(name) must be an integer\(unit.map { " (\($0))" } ?? "") that fits in 64 bits")
            }
            return integer
        default:
            throw .invalidRequest("\(name) must be an integer")
        }
    }

    /// The value of the first member called `name`.
    private func value(of name: String) -> Value? {
        var name = name
        return name.withUTF8 { wanted in
            bytes.withUnsafeReadableBytes { raw in
                for (index, member) in members.enumerated() {
                    if member.isKeyEscaped {
                        if escapedKeys[index]?.utf8.elementsEqual(wanted) == true { return member.value }
                    } else if UnsafeRawBufferPointer(rebasing: raw[member.key]).elementsEqual(wanted) {
                        return member.value
                    }
                }
                return nil
            }
        }
    }
}

// MARK: - Scanning

extension JSONObjectReader {
    fileprivate enum Message {
        static let notJSON = "the request body is not valid JSON"
        static let notAnObject = "the request body must be a JSON object"
    }

    fileprivate enum Kind {
        case string, number, boolean, null, container
    }

    /// Where a value lies in the body; for a string, the bytes between its quotes.
    fileprivate struct Value {
        var kind: Kind
        var range: Range<Int>
        var isEscaped = false
    }

    /// A top-level member: its key (between the quotes) and its value.
    fileprivate struct Member {
        var key: Range<Int>
        var isKeyEscaped: Bool
        var value: Value
    }

    fileprivate enum Outcome {
        case object([Member])
        case notAnObject
        case invalid
    }

    /// A strict recursive-descent pass over the body, with the nesting bounded
    /// by `maximumDepth`. Offsets are relative to the body's first byte.
    fileprivate struct Scanner {
        let bytes: UnsafeRawBufferPointer
        var index = 0
        var depth = 0
        var members: [Member] = []

        init(_ bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
        }

        mutating func document() -> Outcome {
            if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { index = 3 }
            skipWhitespace()
            let isObject = peek == UInt8(ascii: "{")
            if isObject { members.reserveCapacity(8) }
            guard value() != nil else { return .invalid }
            skipWhitespace()
            guard index == bytes.count else { return .invalid }
            return isObject ? .object(members) : .notAnObject
        }

        private var peek: UInt8? {
            index < bytes.count ? bytes[index] : nil
        }

        private mutating func skipWhitespace() {
            while let byte = peek, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
        }

        private mutating func consume(_ byte: UInt8) -> Bool {
            guard peek == byte else { return false }
            index += 1
            return true
        }

        /// One value, whitespace before it not included.
        private mutating func value() -> Value? {
            guard let byte = peek else { return nil }
            let start = index
            switch byte {
            case UInt8(ascii: "\""):
                guard let isEscaped = string() else { return nil }
                return Value(kind: .string, range: start + 1..<index - 1, isEscaped: isEscaped)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                guard number() else { return nil }
                return Value(kind: .number, range: start..<index)
            case UInt8(ascii: "t"):
                return literal("true") ? Value(kind: .boolean, range: start..<index) : nil
            case UInt8(ascii: "f"):
                return literal("false") ? Value(kind: .boolean, range: start..<index) : nil
            case UInt8(ascii: "n"):
                return literal("null") ? Value(kind: .null, range: start..<index) : nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                defer { depth -= 1 }
                guard depth <= JSONObjectReader.maximumDepth else { return nil }
                guard byte == UInt8(ascii: "{") ? object() : array() else { return nil }
                return Value(kind: .container, range: start..<index)
            default:
                return nil
            }
        }

        /// `{ "key": value, … }`; at depth 1 the members are recorded.
        private mutating func object() -> Bool {
            index += 1
            skipWhitespace()
            if consume(UInt8(ascii: "}")) { return true }
            while true {
                let keyStart = index + 1
                guard peek == UInt8(ascii: "\""), let isKeyEscaped = string() else { return false }
                let key = keyStart..<index - 1
                skipWhitespace()
                guard consume(UInt8(ascii: ":")) else { return false }
                skipWhitespace()
                guard let value = value() else { return false }
                if depth == 1 { members.append(Member(key: key, isKeyEscaped: isKeyEscaped, value: value)) }
                skipWhitespace()
                if consume(UInt8(ascii: "}")) { return true }
                guard consume(UInt8(ascii: ",")) else { return false }
                skipWhitespace()
            }
        }

        /// `[ value, … ]`
        private mutating func array() -> Bool {
            index += 1
            skipWhitespace()
            if consume(UInt8(ascii: "]")) { return true }
            while true {
                guard value() != nil else { return false }
                skipWhitespace()
                if consume(UInt8(ascii: "]")) { return true }
                guard consume(UInt8(ascii: ",")) else { return false }
                skipWhitespace()
            }
        }

        private mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard bytes.count - index >= count else { return false }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
            index += count
            return true
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
        private mutating func number() -> Bool {
            _ = consume(UInt8(ascii: "-"))
            if consume(UInt8(ascii: "0")) {
                // no leading zeros
            } else if digits() == 0 {
                return false
            }
            if consume(UInt8(ascii: ".")), digits() == 0 { return false }
            if consume(UInt8(ascii: "e")) || consume(UInt8(ascii: "E")) {
                if !consume(UInt8(ascii: "+")) { _ = consume(UInt8(ascii: "-")) }
                if digits() == 0 { return false }
            }
            return true
        }

        private mutating func digits() -> Int {
            let start = index
            while let byte = peek, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
            return index - start
        }

        /// A string from its opening quote to past its closing one: escapes
        /// must be valid (surrogates in pairs), the text valid UTF-8 with no
        /// raw control characters. Returns whether it holds escapes.
        private mutating func string() -> Bool? {
            index += 1
            var isEscaped = false
            while let byte = peek {
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return isEscaped
                case UInt8(ascii: "\\"):
                    isEscaped = true
                    guard escape() else { return nil }
                case 0x00..<0x20:
                    return nil
                case 0x80...:
                    guard let length = JSONStringDecoder.utf8SequenceLength(bytes, at: index) else { return nil }
                    index += length
                default:
                    index += 1
                }
            }
            return nil
        }

        private mutating func escape() -> Bool {
            index += 1
            guard let byte = peek else { return false }
            index += 1
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                return true
            case UInt8(ascii: "u"):
                guard let unit = JSONStringDecoder.hex4(bytes, at: index) else { return false }
                index += 4
                switch unit {
                case 0xD800..<0xDC00:
                    guard consume(UInt8(ascii: "\\")), consume(UInt8(ascii: "u")),
                        let low = JSONStringDecoder.hex4(bytes, at: index), (0xDC00..<0xE000).contains(low)
                    else { return false }
                    index += 4
                    return true
                case 0xDC00..<0xE000:
                    return false
                default:
                    return true
                }
            default:
                return false
            }
        }
    }
}

// MARK: - Strings and numbers

/// Decoding of JSON string contents already checked by the scanner.
enum JSONStringDecoder {
    /// The text of checked string contents (between the quotes), escapes resolved.
    static func decode(_ raw: UnsafeRawBufferPointer) -> String {
        // Resolving escapes never makes the text longer.
        String(unsafeUninitializedCapacity: raw.count) { output in
            var index = 0
            var count = 0
            func append(_ byte: UInt8) {
                output[count] = byte
                count += 1
            }
            while index < raw.count {
                let byte = raw[index]
                index += 1
                guard byte == UInt8(ascii: "\\") else {
                    append(byte)
                    continue
                }
                let escaped = raw[index]
                index += 1
                switch escaped {
                case UInt8(ascii: "b"): append(0x08)
                case UInt8(ascii: "f"): append(0x0C)
                case UInt8(ascii: "n"): append(0x0A)
                case UInt8(ascii: "r"): append(0x0D)
                case UInt8(ascii: "t"): append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = UInt32(hex4(raw, at: index) ?? 0xFFFD)
                    index += 4
                    if (0xD800..<0xDC00).contains(scalar) {
                        let low = UInt32(hex4(raw, at: index + 2) ?? 0xDC00)
                        index += 6
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    for byte in (Unicode.Scalar(scalar) ?? "\u{FFFD}").utf8 { append(byte) }
                default: append(escaped)  // " \ /
                }
            }
            return count
        }
    }

    /// The four hex digits at `index` as a UTF-16 code unit.
    static func hex4(_ bytes: UnsafeRawBufferPointer, at index: Int) -> UInt16? {
        guard index >= 0, bytes.count - index >= 4 else { return nil }
        var unit: UInt16 = 0
        for offset in 0..<4 {
            let byte = bytes[index + offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            unit = unit << 4 | UInt16(digit)
        }
        return unit
    }

    /// The length of the well-formed UTF-8 sequence starting with a non-ASCII
    /// byte at `index` (RFC 3629: no overlong forms, no surrogates, nothing
    /// above U+10FFFF), or `nil`.
    static func utf8SequenceLength(_ bytes: UnsafeRawBufferPointer, at index: Int) -> Int? {
        let lead = bytes[index]
        let length: Int
        var second: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; second = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; second = 0x80...0x9F
        case 0xF0: length = 4; second = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; second = 0x80...0x8F
        default: return nil
        }
        guard bytes.count - index >= length, second.contains(bytes[index + 1]) else { return nil }
        for offset in 2..<length where !(0x80...0xBF).contains(bytes[index + offset]) { return nil }
        return length
    }
}

/// Integer values of JSON number tokens already checked by the scanner.
enum JSONNumber {
    /// The exact value of the number if it is an integer that fits in
    /// `Int64`, whatever its spelling (`-0`, `1.0`, `1e3`, `100e-2`); `nil` otherwise.
    static func int64(_ token: UnsafeRawBufferPointer) -> Int64? {
        var index = 0
        let isNegative = token.first == UInt8(ascii: "-")
        if isNegative { index = 1 }
        // The digits without leading or trailing zeros, and the power of ten they are scaled by.
        var significand: UInt64 = 0
        var significantDigits = 0
        var trailingZeros = 0
        var fractionDigits = 0
        var inFraction = false
        while index < token.count {
            let byte = token[index]
            if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") { break }
            index += 1
            if byte == UInt8(ascii: ".") {
                inFraction = true
                continue
            }
            if inFraction { fractionDigits += 1 }
            let digit = UInt64(byte - UInt8(ascii: "0"))
            if digit == 0 {
                if significantDigits > 0 { trailingZeros += 1 }
                continue
            }
            // More than 19 significant digits with a non-zero last one is
            // either a fraction or beyond 2^63.
            significantDigits += trailingZeros + 1
            guard significantDigits <= 19 else { return nil }
            for _ in 0..<trailingZeros { significand *= 10 }
            significand = significand * 10 + digit
            trailingZeros = 0
        }
        var exponent = 0
        if index < token.count {
            index += 1
            let isExponentNegative = token[index] == UInt8(ascii: "-")
            if token[index] == UInt8(ascii: "-") || token[index] == UInt8(ascii: "+") { index += 1 }
            while index < token.count {
                // Saturates far beyond any digit count a buffer can hold, so
                // it cannot be brought back into range by the digits before it.
                exponent = min(exponent * 10 + Int(token[index] - UInt8(ascii: "0")), 1 << 40)
                index += 1
            }
            if isExponentNegative { exponent = -exponent }
        }
        guard significand != 0 else { return 0 }
        let scale = exponent + trailingZeros - fractionDigits
        // The last significant digit is not zero: a negative scale leaves a fraction.
        guard scale >= 0, scale <= 19 else { return nil }
        for _ in 0..<scale {
            let (product, overflow) = significand.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            significand = product
        }
        if isNegative {
            guard significand <= UInt64(Int64.max) + 1 else { return nil }
            return significand == UInt64(Int64.max) + 1 ? Int64.min : -Int64(significand)
        }
        return Int64(exactly: significand)
    }
}
