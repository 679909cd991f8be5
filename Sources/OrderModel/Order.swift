/// Where an order is in its life.
///
/// `CREATED → PAID → PARTIALLY_REFUNDED → REFUNDED`, and `CREATED → CLOSED`
/// (closed by the merchant, or by the expiry sweep when unpaid in time).
public enum OrderStatus: String, Sendable, Codable, CaseIterable {
    case created = "CREATED"
    case paid = "PAID"
    case partiallyRefunded = "PARTIALLY_REFUNDED"
    case refunded = "REFUNDED"
    case closed = "CLOSED"
}

/// Why a closed order was closed.
public enum CloseReason: String, Sendable, Codable {
    case merchant = "MERCHANT"
    case expired = "EXPIRED"
    /// Another order holds its merchant key; the reconciler closed this rival.
    case duplicate = "DUPLICATE"
}

/// A merchant's order as stored in its cell.
public struct Order: Sendable, Equatable {
    public var id: OrderID
    public var merchantID: String
    public var outTradeNo: String
    /// Amount in minor units of ``currency``.
    public var amount: Int64
    public var currency: Currency
    public var description: String?
    public var status: OrderStatus
    public var refundedAmount: Int64
    public var paymentID: String?
    public var closeReason: CloseReason?
    public var createdAt: Timestamp
    public var expiresAt: Timestamp
    public var paidAt: Timestamp?
    public var closedAt: Timestamp?
    public var updatedAt: Timestamp
    /// Number of events appended for this order; the next event's sequence.
    public var revision: Int
    /// Where the order stands with the merchant-key index; only a
    /// ``MerchantKeyStatus/verified`` order is paid without a claim first.
    public var keyStatus: MerchantKeyStatus

    public var cellID: CellID { id.cell }

    public init(
        id: OrderID, merchantID: String, outTradeNo: String, amount: Int64, currency: Currency,
        description: String?, status: OrderStatus = .created, refundedAmount: Int64 = 0,
        paymentID: String? = nil, closeReason: CloseReason? = nil, createdAt: Timestamp,
        expiresAt: Timestamp, paidAt: Timestamp? = nil, closedAt: Timestamp? = nil,
        updatedAt: Timestamp? = nil, revision: Int = 1, keyStatus: MerchantKeyStatus = .reserved
    ) {
        self.id = id
        self.merchantID = merchantID
        self.outTradeNo = outTradeNo
        self.amount = amount
        self.currency = currency
        self.description = description
        self.status = status
        self.refundedAmount = refundedAmount
        self.paymentID = paymentID
        self.closeReason = closeReason
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.paidAt = paidAt
        self.closedAt = closedAt
        self.updatedAt = updatedAt ?? createdAt
        self.revision = revision
        self.keyStatus = keyStatus
    }

    /// The order's merchant key.
    public var merchantKey: MerchantKey { MerchantKey(merchantID: merchantID, outTradeNo: outTradeNo) }

    /// Whether a create request describes this same order (idempotent replay).
    public func matches(_ request: CreateOrderRequest) -> Bool {
        merchantID == request.merchantID && outTradeNo == request.outTradeNo && amount == request.amount
            && currency == request.currency && description == request.description
            && expiresAt.millisecondsSinceEpoch - createdAt.millisecondsSinceEpoch == request.expireSeconds * 1000
    }
}

/// One refund of an order.
public struct Refund: Sendable, Equatable {
    public var refundID: String
    public var orderID: OrderID
    public var amount: Int64
    public var reason: String?
    public var createdAt: Timestamp

    public init(refundID: String, orderID: OrderID, amount: Int64, reason: String?, createdAt: Timestamp) {
        self.refundID = refundID
        self.orderID = orderID
        self.amount = amount
        self.reason = reason
        self.createdAt = createdAt
    }
}

/// What happened to an order; events form its audit trail.
public enum OrderEventKind: String, Sendable, Codable, CaseIterable {
    case created = "ORDER_CREATED"
    case paid = "ORDER_PAID"
    case closed = "ORDER_CLOSED"
    case expired = "ORDER_EXPIRED"
    case refunded = "ORDER_REFUNDED"
}

/// One entry of an order's audit trail, appended in the same transaction as the change.
public struct OrderEvent: Sendable, Equatable {
    public var orderID: OrderID
    /// 1 for the creation, then one more for each change.
    public var sequence: Int
    public var kind: OrderEventKind
    public var at: Timestamp
    /// The money the event moved, if any (payment or refund amount).
    public var amount: Int64?
    /// The payment id or refund id the event carried.
    public var reference: String?
    public var statusAfter: OrderStatus

    public init(
        orderID: OrderID, sequence: Int, kind: OrderEventKind, at: Timestamp, amount: Int64?,
        reference: String?, statusAfter: OrderStatus
    ) {
        self.orderID = orderID
        self.sequence = sequence
        self.kind = kind
        self.at = at
        self.amount = amount
        self.reference = reference
        self.statusAfter = statusAfter
    }
}
