import Testing

@testable import OrderModel

@Suite("Order id codec")
struct OrderIDTests {
    /// Deterministic pseudo-random values for the property tests.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    static func randomID(_ random: inout Generator) throws -> (OrderID, CellID, Timestamp, Int64) {
        let cell = CellID(Int.random(in: 0...9999, using: &random))!
        let seconds = Int64.random(
            in: OrderID.earliestTime.secondsSinceEpoch...OrderID.latestTime.secondsSinceEpoch, using: &random
        )
        let time = Timestamp(millisecondsSinceEpoch: seconds * 1000 + Int64.random(in: 0...999, using: &random))
        let sequence = Int64.random(in: 0...OrderID.maximumSequence, using: &random)
        return (try OrderID(cell: cell, createdAt: time, sequence: sequence), cell, time, sequence)
    }

    @Test func knownLayout() throws {
        // 2026-11-21T22:53:19Z, cell 2, sequence 1.
        let id = try OrderID(cell: CellID(2)!, createdAt: Timestamp(secondsSinceEpoch: 1_795_301_599), sequence: 1)
        #expect(id.description.count == 28)
        #expect(id.description.hasPrefix("1" + "0002" + "261121225319" + "0000000001"))
        #expect(id.version == 1)
        #expect(id.cell == CellID(2)!)
        #expect(id.sequence == 1)
        #expect(id.createdAt == Timestamp(secondsSinceEpoch: 1_795_301_599))
    }

    @Test func roundTripIsExact() throws {
        var random = Generator(state: 1)
        for _ in 0..<20_000 {
            let (id, cell, time, sequence) = try Self.randomID(&random)
            let parsed = try OrderID(parsing: id.description)
            #expect(parsed == id)
            #expect(parsed.cell == cell)
            #expect(parsed.sequence == sequence)
            #expect(parsed.createdAt == Timestamp(secondsSinceEpoch: time.secondsSinceEpoch))
            #expect(parsed.description == id.description)
        }
    }

    @Test func idsOfOneCellSortByCreationTime() throws {
        var random = Generator(state: 2)
        let cell = CellID(7)!
        var sequence: Int64 = 0
        var previous: (OrderID, Timestamp)?
        var time = OrderID.earliestTime
        for _ in 0..<5_000 {
            time = time.adding(milliseconds: Int64.random(in: 0...5_000_000, using: &random))
            sequence += Int64.random(in: 1...3, using: &random)
            let id = try OrderID(cell: cell, createdAt: time, sequence: sequence)
            if let (earlier, earlierTime) = previous {
                #expect(earlier < id)
                #expect(earlier.description < id.description, "text order must match time order")
                #expect(earlierTime.secondsSinceEpoch <= id.createdAt.secondsSinceEpoch)
            }
            previous = (id, time)
        }
    }

    @Test func everySingleDigitTypoIsRejected() throws {
        var random = Generator(state: 3)
        for _ in 0..<300 {
            let text = Array(try Self.randomID(&random).0.description.utf8)
            for position in 0..<text.count {
                for digit in UInt8(ascii: "0")...UInt8(ascii: "9") where digit != text[position] {
                    var typo = text
                    typo[position] = digit
                    #expect(throws: OrderIDError.self) { try OrderID(parsing: String(decoding: typo, as: UTF8.self)) }
                }
            }
        }
    }

    @Test func everyAdjacentTranspositionIsRejected() throws {
        var random = Generator(state: 4)
        for _ in 0..<1_000 {
            let text = Array(try Self.randomID(&random).0.description.utf8)
            for position in 0..<(text.count - 1) where text[position] != text[position + 1] {
                var swapped = text
                swapped.swapAt(position, position + 1)
                #expect(throws: OrderIDError.self) { try OrderID(parsing: String(decoding: swapped, as: UTF8.self)) }
            }
        }
    }

    /// Appends the right check digit to 27 digits.
    static func withCheckDigit(_ digits: String) -> String {
        digits + String(DammCheckDigit.checkDigit(of: digits.utf8.map { $0 - 48 }))
    }

    @Test func malformedIDsGetPreciseErrors() {
        #expect(throws: OrderIDError.wrongLength(0)) { try OrderID(parsing: "") }
        #expect(throws: OrderIDError.wrongLength(27)) { try OrderID(parsing: String(repeating: "1", count: 27)) }
        #expect(throws: OrderIDError.wrongLength(29)) { try OrderID(parsing: String(repeating: "1", count: 29)) }
        #expect(throws: OrderIDError.nonDigit(position: 3)) { try OrderID(parsing: "100a226112122531900000000013") }
        #expect(throws: OrderIDError.nonDigit(position: 0)) { try OrderID(parsing: " 000226112122531900000000013") }
        #expect(throws: OrderIDError.wrongLength(28 * 2)) { try OrderID(parsing: String(repeating: "é", count: 28)) }
        #expect(throws: OrderIDError.unsupportedVersion(2)) {
            try OrderID(parsing: Self.withCheckDigit("200022611212253190000000001"))
        }
        #expect(throws: OrderIDError.unsupportedVersion(0)) {
            try OrderID(parsing: Self.withCheckDigit("000022611212253190000000001"))
        }
        // Month 13, and the 30th of February, with valid check digits.
        #expect(throws: OrderIDError.invalidTime) { try OrderID(parsing: Self.withCheckDigit("100022613212253190000000001")) }
        #expect(throws: OrderIDError.invalidTime) { try OrderID(parsing: Self.withCheckDigit("100022602302253190000000001")) }
        #expect(throws: OrderIDError.invalidTime) { try OrderID(parsing: Self.withCheckDigit("100022611212460190000000001")) }
    }

    @Test func mintingRejectsValuesThatDoNotFit() {
        let cell = CellID(1)!
        #expect(throws: OrderIDError.sequenceOutOfRange(10_000_000_000)) {
            try OrderID(cell: cell, createdAt: OrderID.earliestTime, sequence: 10_000_000_000)
        }
        #expect(throws: OrderIDError.sequenceOutOfRange(-1)) { try OrderID(cell: cell, createdAt: OrderID.earliestTime, sequence: -1) }
        #expect(throws: OrderIDError.timeOutOfRange) {
            try OrderID(cell: cell, createdAt: OrderID.earliestTime.adding(seconds: -1), sequence: 1)
        }
        #expect(throws: OrderIDError.timeOutOfRange) {
            try OrderID(cell: cell, createdAt: OrderID.latestTime.adding(seconds: 1), sequence: 1)
        }
        #expect(CellID(10_000) == nil)
        #expect(CellID(-1) == nil)
    }

    @Test func timestampsFormatAsRFC3339() {
        #expect(Timestamp(millisecondsSinceEpoch: 0).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp(millisecondsSinceEpoch: 1_795_301_599_123).rfc3339 == "2026-11-21T22:53:19.123Z")
        #expect(Timestamp(secondsSinceEpoch: 951_782_400).rfc3339 == "2000-02-29T00:00:00.000Z")
        var random = Generator(state: 5)
        for _ in 0..<10_000 {
            let seconds = Int64.random(in: 0...4_102_444_799, using: &random)
            let civil = CivilTime(secondsSinceEpoch: seconds)
            #expect(civil.isValid)
            #expect(civil.secondsSinceEpoch == seconds)
        }
    }
}
