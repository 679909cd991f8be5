/// A stable, machine-readable reason for refusing a request.
///
/// The raw value is the `code` of the `application/problem+json` response;
/// clients branch on it, so a published code never changes meaning.
public enum OrderErrorCode: String, Sendable, CaseIterable, Codable {
    case invalidRequest = "invalid_request"
    case invalidOrderID = "invalid_order_id"
    case orderNotFound = "order_not_found"
    case outTradeNoConflict = "out_trade_no_conflict"
    case refundIDConflict = "refund_id_conflict"
    case invalidState = "invalid_state"
    case amountMismatch = "amount_mismatch"
    case orderExpired = "order_expired"
    case refundExceedsAmount = "refund_exceeds_amount"
    case cellUnavailable = "cell_unavailable"
    case noCellAvailable = "no_cell_available"
    case unauthorized = "unauthorized"
    case forbidden = "forbidden"
    case versionConflict = "version_conflict"
    case rateLimited = "rate_limited"
    case degraded = "degraded"
    case notFound = "not_found"
    case payloadTooLarge = "payload_too_large"
    case internalError = "internal_error"

    /// The HTTP status this code is answered with.
    public var httpStatus: Int {
        switch self {
        case .invalidRequest, .invalidOrderID: return 400
        case .unauthorized: return 401
        case .forbidden: return 403
        case .rateLimited: return 429
        case .orderNotFound, .notFound: return 404
        case .outTradeNoConflict, .refundIDConflict, .invalidState, .amountMismatch, .orderExpired,
            .refundExceedsAmount, .versionConflict:
            return 409
        case .payloadTooLarge: return 413
        case .cellUnavailable, .noCellAvailable, .degraded: return 503
        case .internalError: return 500
        }
    }

    /// A short human title for the problem document.
    public var title: String {
        switch self {
        case .invalidRequest: return "Invalid request"
        case .invalidOrderID: return "Invalid order id"
        case .orderNotFound: return "Order not found"
        case .outTradeNoConflict: return "out_trade_no already used with a different request"
        case .refundIDConflict: return "refund_id already used with a different amount"
        case .invalidState: return "Operation not allowed in the order's state"
        case .amountMismatch: return "Amount does not match the order"
        case .orderExpired: return "Order expired"
        case .refundExceedsAmount: return "Refunds would exceed the order amount"
        case .cellUnavailable: return "The order's cell is unavailable"
        case .noCellAvailable: return "No cell can take new orders"
        case .unauthorized: return "Unauthorized"
        case .forbidden: return "Forbidden for this role"
        case .versionConflict: return "The change was made against an old version"
        case .rateLimited: return "Too many requests"
        case .degraded: return "Refused by a degradation switch"
        case .notFound: return "Not found"
        case .payloadTooLarge: return "Request body too large"
        case .internalError: return "Internal error"
        }
    }
}

/// A refusal with a stable code and a precise, human-readable detail.
public struct OrderError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: OrderErrorCode
    public var detail: String
    /// When the client may try again (rate limits, unavailability), in seconds.
    public var retryAfterSeconds: Int?

    public init(_ code: OrderErrorCode, _ detail: String, retryAfterSeconds: Int? = nil) {
        self.code = code
        self.detail = detail
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { "\(code.rawValue): \(detail)" }

    public static func invalidRequest(_ detail: String) -> OrderError { OrderError(.invalidRequest, detail) }
}
