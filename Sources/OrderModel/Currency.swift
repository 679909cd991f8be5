/// An ISO 4217 currency accepted by OrderCell, with its number of minor units.
///
/// Amounts are always integers in minor units (cents for USD, yen for JPY,
/// fils for KWD); the exponent says how a client should display them.
public struct Currency: Hashable, Sendable, CustomStringConvertible {
    /// The three-letter upper-case code, e.g. `CNY`.
    public let code: String
    /// Digits after the decimal point of the major unit.
    public let minorUnitExponent: Int

    /// The known currency with this code, or `nil`.
    public init?(code: String) {
        guard let exponent = Currency.exponents[code] else { return nil }
        self.code = code
        self.minorUnitExponent = exponent
    }

    public var description: String { code }

    /// Active ISO 4217 codes and their minor-unit exponents.
    static let exponents: [String: Int] = {
        var table: [String: Int] = [:]
        let twoDigits = """
            AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF \
            CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF \
            IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR \
            MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD \
            SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR \
            ZMW ZWG
            """
        let zeroDigits = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF"
        let threeDigits = "BHD IQD JOD KWD LYD OMR TND"
        for code in twoDigits.split(separator: " ") { table[String(code)] = 2 }
        for code in zeroDigits.split(separator: " ") { table[String(code)] = 0 }
        for code in threeDigits.split(separator: " ") { table[String(code)] = 3 }
        return table
    }()
}
