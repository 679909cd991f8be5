/// A stable, machine-readable reason for refusing a request.
///
/// The raw value is the `code` of the `application/problem+json` response;
/// clients branch on it, so a published code never changes meaning.
public enum OrderErrorCode: String, Sendable, CaseIterable, Codable {
    case invalidRequest = "invalid_request"
    case invalidOrderID = "invalid_order_id"
    case orderNotFound = "order_not_found"
    case outTradeNoConflict = "out_trade_no_conflict"
    /// Another order holds this order's `(merchant_id, out_trade_no)`: this one can never be paid.
    case duplicateOrder = "duplicate_order"
    /// The merchant-key index slot of the key could not be reached (the `strict` policy, or a pay that needs a claim),
    /// or cannot confirm the key yet (a pay whose key is reserved for another cell's create that has not finished).
    case indexUnavailable = "index_unavailable"
    /// Between a cell and the proxy only: the order must claim its merchant key before it is paid.
    case keyUnclaimed = "key_unclaimed"
    case refundIDConflict = "refund_id_conflict"
    case invalidState = "invalid_state"
    case amountMismatch = "amount_mismatch"
    case orderExpired = "order_expired"
    case refundExceedsAmount = "refund_exceeds_amount"
    case cellUnavailable = "cell_unavailable"
    case noCellAvailable = "no_cell_available"
    case unauthorized = "unauthorized"
    /// A signed request whose signature does not match (wrong secret, or the method, path, query or body altered).
    case signatureMismatch = "signature_mismatch"
    /// A signed request whose timestamp is more than the window (5 minutes) from the server's clock.
    case timestampOutOfWindow = "timestamp_out_of_window"
    /// A signed request whose nonce this server has seen within the window.
    case nonceReplayed = "nonce_replayed"
    /// A signed request naming an access key that does not exist.
    case unknownKey = "unknown_key"
    /// A signed request naming an access key that was revoked.
    case keyRevoked = "key_revoked"
    /// A signed request naming an access key whose rotation window is over.
    case keyExpired = "key_expired"
    case forbidden = "forbidden"
    case versionConflict = "version_conflict"
    case alreadyExists = "already_exists"
    case controlPlaneUnavailable = "control_plane_unavailable"
    case rateLimited = "rate_limited"
    case degraded = "degraded"
    case notFound = "not_found"
    case methodNotAllowed = "method_not_allowed"
    case payloadTooLarge = "payload_too_large"
    case internalError = "internal_error"
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
