/// The calls of the public order API, as permissions see them.
public enum OrderOperation: String, Sendable, CaseIterable {
    case create
    /// `GET /v1/orders/{id}`.
    case read
    /// `GET /v1/orders?merchant_id=…&out_trade_no=…`.
    case lookup
    case pay
    case close
    case refund
    case listRefunds = "list_refunds"
    case listEvents = "list_events"
}

extension Caller {
    /// Whether this caller may make `operation` at all (ownership aside):
    /// a merchant everything but pay, the payment service reads and pays.
    /// The table in docs/security.md says the same, and a test holds the two
    /// together.
    public func check(_ operation: OrderOperation) throws(OrderError) {
        switch (self, operation) {
        case (.unauthenticated, _):
            return
        case (.merchant, .pay):
            throw OrderError(.forbidden, "only the payment service may pay an order; a merchant's key cannot")
        case (.merchant, _):
            return
        case (.paymentService, .read), (.paymentService, .lookup), (.paymentService, .pay), (.paymentService, .listRefunds),
            (.paymentService, .listEvents):
            return
        case (.paymentService, _):
            throw OrderError(.forbidden, "the payment service may read and pay orders; \(operation.rawValue) is the merchant's")
        }
    }

    /// The merchant whose orders alone this caller may touch; nil: any
    /// merchant's (the payment service; everyone when unauthenticated). The
    /// cell checks an order against it where it has the order at hand.
    public var ownMerchant: String? {
        if case .merchant(let own) = self { return own }
        return nil
    }

    /// Whether this caller may see the orders of `merchantID`: a merchant
    /// only its own. Another merchant's order is answered as one that does
    /// not exist (`order_not_found`), so its existence is not given away.
    public func mayActFor(merchant merchantID: String) -> Bool {
        switch self {
        case .unauthenticated, .paymentService: return true
        case .merchant(let own): return own == merchantID
        }
    }

    /// Checks a `merchant_id` the caller names in a body or query: a merchant names only itself (`403`).
    public func checkNames(merchant merchantID: String) throws(OrderError) {
        guard mayActFor(merchant: merchantID) else {
            throw OrderError(.forbidden, "merchant_id \(merchantID) is not the merchant of this access key")
        }
    }
}
