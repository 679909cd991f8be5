/// The Damm check digit: detects every single-digit error and every
/// transposition of adjacent digits, which a Luhn digit does not (09 ↔ 90).
public enum DammCheckDigit {
    // The standard totally anti-symmetric quasigroup of order 10, row-major.
    @usableFromInline
    static let table: [UInt8] = [
        0, 3, 1, 7, 5, 9, 8, 6, 4, 2,
        7, 0, 9, 2, 1, 5, 4, 8, 6, 3,
        4, 2, 0, 6, 8, 7, 1, 3, 5, 9,
        1, 7, 5, 0, 9, 8, 3, 4, 2, 6,
        6, 1, 2, 3, 0, 4, 5, 9, 7, 8,
        3, 6, 7, 4, 2, 0, 9, 5, 8, 1,
        5, 8, 6, 9, 7, 2, 0, 1, 3, 4,
        8, 9, 4, 5, 3, 6, 2, 0, 1, 7,
        9, 4, 3, 8, 6, 1, 7, 2, 0, 5,
        2, 5, 8, 1, 4, 3, 6, 7, 9, 0,
    ]

    /// Folds one more digit (0...9) into the running interim digit.
    @inlinable
    public static func step(_ interim: UInt8, _ digit: UInt8) -> UInt8 {
        table.withUnsafeBufferPointer { $0[Int(interim) &* 10 &+ Int(digit)] }
    }

    /// The check digit for a sequence of digits (each 0...9).
    @inlinable
    public static func checkDigit<S: Sequence>(of digits: S) -> UInt8 where S.Element == UInt8 {
        var interim: UInt8 = 0
        for digit in digits { interim = step(interim, digit) }
        return interim
    }
}
