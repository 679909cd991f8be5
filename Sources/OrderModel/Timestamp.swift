/// A point in time in UTC, in whole milliseconds since 1970-01-01T00:00:00Z.
///
/// OrderCell keeps time as an integer so that the pure layers can take the
/// clock as a parameter and so that formatting needs no Foundation formatter.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var millisecondsSinceEpoch: Int64

    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    public init(secondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = secondsSinceEpoch * 1000
    }

    public var secondsSinceEpoch: Int64 {
        millisecondsSinceEpoch >= 0 ? millisecondsSinceEpoch / 1000 : (millisecondsSinceEpoch - 999) / 1000
    }

    public func adding(seconds: Int64) -> Timestamp {
        Timestamp(millisecondsSinceEpoch: millisecondsSinceEpoch + seconds * 1000)
    }

    public func adding(milliseconds: Int64) -> Timestamp {
        Timestamp(millisecondsSinceEpoch: millisecondsSinceEpoch + milliseconds)
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-21T22:44:31.123Z`.
    public var description: String { rfc3339 }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-21T22:44:31.123Z`.
    public var rfc3339: String {
        let civil = CivilTime(secondsSinceEpoch: secondsSinceEpoch)
        let millis = Int(millisecondsSinceEpoch - secondsSinceEpoch * 1000)
        return String(unsafeUninitializedCapacity: 24) { bytes in
            func put(_ value: Int, at offset: Int, width: Int) {
                var v = value
                for i in stride(from: offset + width - 1, through: offset, by: -1) {
                    bytes[i] = UInt8(truncatingIfNeeded: 48 + v % 10)
                    v /= 10
                }
            }
            put(civil.year, at: 0, width: 4); bytes[4] = 45  // -
            put(civil.month, at: 5, width: 2); bytes[7] = 45
            put(civil.day, at: 8, width: 2); bytes[10] = 84  // T
            put(civil.hour, at: 11, width: 2); bytes[13] = 58  // :
            put(civil.minute, at: 14, width: 2); bytes[16] = 58
            put(civil.second, at: 17, width: 2); bytes[19] = 46  // .
            put(millis, at: 20, width: 3); bytes[23] = 90  // Z
            return 24
        }
    }
}

/// A UTC calendar date and time of day, converted without Foundation
/// (days-from-civil and civil-from-days, proleptic Gregorian calendar).
public struct CivilTime: Equatable, Sendable {
    public var year: Int
    public var month: Int
    public var day: Int
    public var hour: Int
    public var minute: Int
    public var second: Int

    public init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
    }

    public init(secondsSinceEpoch: Int64) {
        let seconds = Int(secondsSinceEpoch)
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        self.year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        self.month = month
        self.day = day
        self.hour = secondOfDay / 3600
        self.minute = (secondOfDay % 3600) / 60
        self.second = secondOfDay % 60
    }

    /// Whether every field is within the calendar's range (the 30th of February is not).
    public var isValid: Bool {
        guard (1...12).contains(month), (0...23).contains(hour), (0...59).contains(minute), (0...59).contains(second)
        else { return false }
        return day >= 1 && day <= CivilTime.daysIn(month: month, year: year)
    }

    public static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Seconds since the Unix epoch of this (valid) civil time.
    public var secondsSinceEpoch: Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let dayOfYear = (153 * mp + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return Int64(days * 86_400 + hour * 3600 + minute * 60 + second)
    }
}

extension Timestamp: Codable {
    /// Encoded as integer milliseconds since the epoch.
    public init(from decoder: any Decoder) throws {
        millisecondsSinceEpoch = try decoder.singleValueContainer().decode(Int64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(millisecondsSinceEpoch)
    }
}

extension Duration {
    /// The duration in whole milliseconds (rounded towards zero), for
    /// timestamps, timeouts given to servers, and pass-over times.
    public var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
