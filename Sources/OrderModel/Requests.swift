/// Limits on what a request may carry; checked before anything reaches a cell.
public enum RequestLimits {
    public static let merchantIDLength = 1...32
    public static let outTradeNoLength = 1...64
    public static let referenceLength = 1...64
    public static let descriptionMaxBytes = 256
    public static let reasonMaxBytes = 256
    /// Largest amount in minor units (10^12 - 1: ten billion major units at two digits).
    public static let maximumAmount: Int64 = 999_999_999_999
    public static let expireSeconds: ClosedRange<Int64> = 1...2_592_000
    public static let defaultExpireSeconds: Int64 = 1800

    /// Validates an identifier made of letters, digits and `_ - . | * @`.
    public static func checkIdentifier(_ value: String, field: String, length: ClosedRange<Int>) throws(OrderError) {
        let bytes = value.utf8
        guard length.contains(bytes.count) else {
            throw .invalidRequest("\(field) must be \(length.lowerBound) to \(length.upperBound) characters, got \(bytes.count)")
        }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "|"), UInt8(ascii: "*"), UInt8(ascii: "@"):
                continue
            default:
                throw .invalidRequest("\(field) may contain only letters, digits and _ - . | * @")
            }
        }
    }

    public static func checkAmount(_ amount: Int64, field: String = "amount") throws(OrderError) {
        guard amount > 0 else { throw .invalidRequest("\(field) must be a positive integer in minor units, got \(amount)") }
        guard amount <= maximumAmount else { throw .invalidRequest("\(field) must be at most \(maximumAmount), got \(amount)") }
    }

    public static func checkText(_ value: String?, field: String, maxBytes: Int) throws(OrderError) {
        guard let value else { return }
        guard value.utf8.count <= maxBytes else {
            throw .invalidRequest("\(field) must be at most \(maxBytes) bytes of UTF-8, got \(value.utf8.count)")
        }
        guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalidRequest("\(field) must not contain control characters")
        }
    }
}

/// A validated request to create an order.
public struct CreateOrderRequest: Sendable, Equatable {
    public var merchantID: String
    public var outTradeNo: String
    public var amount: Int64
    public var currency: Currency
    public var description: String?
    public var expireSeconds: Int64

    /// Validates every field; the error names the first field that is wrong.
    public init(
        merchantID: String, outTradeNo: String, amount: Int64, currency: String, description: String?,
        expireSeconds: Int64?
    ) throws(OrderError) {
        try RequestLimits.checkIdentifier(merchantID, field: "merchant_id", length: RequestLimits.merchantIDLength)
        try RequestLimits.checkIdentifier(outTradeNo, field: "out_trade_no", length: RequestLimits.outTradeNoLength)
        try RequestLimits.checkAmount(amount)
        guard let known = Currency(code: currency) else {
            throw .invalidRequest("currency must be an ISO 4217 code such as CNY or USD, got '\(currency.prefix(8))'")
        }
        try RequestLimits.checkText(description, field: "description", maxBytes: RequestLimits.descriptionMaxBytes)
        let expire = expireSeconds ?? RequestLimits.defaultExpireSeconds
        guard RequestLimits.expireSeconds.contains(expire) else {
            throw .invalidRequest(
                "expire_seconds must be between \(RequestLimits.expireSeconds.lowerBound) and \(RequestLimits.expireSeconds.upperBound), got \(expire)"
            )
        }
        self.merchantID = merchantID
        self.outTradeNo = outTradeNo
        self.amount = amount
        self.currency = known
        self.description = description
        self.expireSeconds = expire
    }
}

/// A change to an existing order. Every command is idempotent on its reference.
public enum OrderCommand: Sendable, Equatable {
    /// Record the payment `paymentID` of exactly the order's amount.
    /// `keyClaimed`: the proxy has just claimed the order's merchant key in
    /// the index (an order that does not hold its key is never paid).
    case pay(paymentID: String, amount: Int64, keyClaimed: Bool = false)
    /// Close an unpaid order at the merchant's request.
    case close
    /// Refund part or all of a paid order.
    case refund(refundID: String, amount: Int64, reason: String?)
    /// Close an unpaid order whose expiry has passed (the sweep's command).
    case expire
    /// Close an unpaid order whose merchant key another order holds (the
    /// reconciler's command); `holder` is that order, when known.
    case closeDuplicate(holder: OrderID?)

    /// Validates a pay command's fields.
    public static func validatedPay(paymentID: String, amount: Int64) throws(OrderError) -> OrderCommand {
        try RequestLimits.checkIdentifier(paymentID, field: "payment_id", length: RequestLimits.referenceLength)
        try RequestLimits.checkAmount(amount)
        return .pay(paymentID: paymentID, amount: amount)
    }

    /// Validates a refund command's fields.
    public static func validatedRefund(refundID: String, amount: Int64, reason: String?) throws(OrderError) -> OrderCommand {
        try RequestLimits.checkIdentifier(refundID, field: "refund_id", length: RequestLimits.referenceLength)
        try RequestLimits.checkAmount(amount)
        try RequestLimits.checkText(reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
        return .refund(refundID: refundID, amount: amount, reason: reason)
    }

    /// The refund id, for commands that carry one.
    public var refundID: String? {
        if case .refund(let refundID, _, _) = self { return refundID }
        return nil
    }
}
