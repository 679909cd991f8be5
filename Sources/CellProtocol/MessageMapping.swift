import OrderModel

// Mapping between the domain types and the RPC messages. Values that come
// off the wire are validated again: a cell never trusts its caller's types.

/// The protobuf message types of the cell RPC, by their domain names.
public typealias RPCOrder = Ordercell_Cell_V1_Order
public typealias RPCRefund = Ordercell_Cell_V1_Refund
public typealias RPCEvent = Ordercell_Cell_V1_Event
public typealias RPCRefusal = Ordercell_Cell_V1_Refusal
public typealias RPCFault = Ordercell_Cell_V1_Fault

/// A message from the wire that does not describe a valid domain value.
public struct RPCDecodingError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension RPCRefusal {
    public init(_ error: OrderError) {
        self.init()
        code = error.code.rawValue
        detail = error.detail
    }

    public var orderError: OrderError {
        OrderError(OrderErrorCode(rawValue: code) ?? .internalError, detail)
    }
}

extension RPCOrder {
    public init(_ order: Order) {
        self.init()
        orderID = order.id.description
        merchantID = order.merchantID
        outTradeNo = order.outTradeNo
        amount = order.amount
        currency = order.currency.code
        if let description = order.description { description_p = description }
        status = order.status.rawValue
        refundedAmount = order.refundedAmount
        if let paymentID = order.paymentID { self.paymentID = paymentID }
        if let closeReason = order.closeReason { self.closeReason = closeReason.rawValue }
        createdAtMs = order.createdAt.millisecondsSinceEpoch
        expiresAtMs = order.expiresAt.millisecondsSinceEpoch
        if let paidAt = order.paidAt { paidAtMs = paidAt.millisecondsSinceEpoch }
        if let closedAt = order.closedAt { closedAtMs = closedAt.millisecondsSinceEpoch }
        updatedAtMs = order.updatedAt.millisecondsSinceEpoch
        revision = Int32(clamping: order.revision)
    }

    public func domain() throws -> Order {
        guard let currency = Currency(code: currency), let status = OrderStatus(rawValue: status) else {
            throw RPCDecodingError("order \(orderID) has an unknown currency or status")
        }
        return Order(
            id: try OrderID(parsing: orderID), merchantID: merchantID, outTradeNo: outTradeNo, amount: amount,
            currency: currency, description: hasDescription_p ? description_p : nil, status: status,
            refundedAmount: refundedAmount, paymentID: hasPaymentID ? paymentID : nil,
            closeReason: hasCloseReason ? CloseReason(rawValue: closeReason) : nil,
            createdAt: Timestamp(millisecondsSinceEpoch: createdAtMs),
            expiresAt: Timestamp(millisecondsSinceEpoch: expiresAtMs),
            paidAt: hasPaidAtMs ? Timestamp(millisecondsSinceEpoch: paidAtMs) : nil,
            closedAt: hasClosedAtMs ? Timestamp(millisecondsSinceEpoch: closedAtMs) : nil,
            updatedAt: Timestamp(millisecondsSinceEpoch: updatedAtMs), revision: Int(revision)
        )
    }
}

extension RPCRefund {
    public init(_ refund: Refund) {
        self.init()
        refundID = refund.refundID
        orderID = refund.orderID.description
        amount = refund.amount
        if let reason = refund.reason { self.reason = reason }
        createdAtMs = refund.createdAt.millisecondsSinceEpoch
    }

    public func domain() throws -> Refund {
        Refund(
            refundID: refundID, orderID: try OrderID(parsing: orderID), amount: amount, reason: hasReason ? reason : nil,
            createdAt: Timestamp(millisecondsSinceEpoch: createdAtMs)
        )
    }
}

extension RPCEvent {
    public init(_ event: OrderEvent) {
        self.init()
        sequence = Int32(clamping: event.sequence)
        kind = event.kind.rawValue
        atMs = event.at.millisecondsSinceEpoch
        if let amount = event.amount { self.amount = amount }
        if let reference = event.reference { self.reference = reference }
        statusAfter = event.statusAfter.rawValue
    }

    public func domain(orderID: OrderID) throws -> OrderEvent {
        guard let kind = OrderEventKind(rawValue: kind), let status = OrderStatus(rawValue: statusAfter) else {
            throw RPCDecodingError("event \(sequence) has an unknown kind or status")
        }
        return OrderEvent(
            orderID: orderID, sequence: Int(sequence), kind: kind, at: Timestamp(millisecondsSinceEpoch: atMs),
            amount: hasAmount ? amount : nil, reference: hasReference ? reference : nil, statusAfter: status
        )
    }
}

extension Ordercell_Cell_V1_CreateOrderRequest {
    public init(_ request: CreateOrderRequest) {
        self.init()
        merchantID = request.merchantID
        outTradeNo = request.outTradeNo
        amount = request.amount
        currency = request.currency.code
        if let description = request.description { description_p = description }
        expireSeconds = request.expireSeconds
    }

    /// The validated request; invalid fields are refused like at the proxy.
    public func domain() throws(OrderError) -> CreateOrderRequest {
        try CreateOrderRequest(
            merchantID: merchantID, outTradeNo: outTradeNo, amount: amount, currency: currency,
            description: hasDescription_p ? description_p : nil, expireSeconds: expireSeconds
        )
    }
}

extension Ordercell_Cell_V1_ApplyCommandRequest {
    public init(_ command: OrderCommand, orderID: OrderID) {
        self.init()
        self.orderID = orderID.description
        switch command {
        case .pay(let paymentID, let amount):
            var pay = Ordercell_Cell_V1_PayCommand()
            pay.paymentID = paymentID
            pay.amount = amount
            self.command = .pay(pay)
        case .close, .expire:
            self.command = .close(Ordercell_Cell_V1_CloseCommand())
        case .refund(let refundID, let amount, let reason):
            var refund = Ordercell_Cell_V1_RefundCommand()
            refund.refundID = refundID
            refund.amount = amount
            if let reason { refund.reason = reason }
            self.command = .refund(refund)
        }
    }

    /// The validated command (expiry is the cell's own business and never travels).
    public func domain() throws(OrderError) -> OrderCommand {
        switch command {
        case .pay(let pay): return try OrderCommand.validatedPay(paymentID: pay.paymentID, amount: pay.amount)
        case .close: return .close
        case .refund(let refund):
            return try OrderCommand.validatedRefund(refundID: refund.refundID, amount: refund.amount, reason: refund.hasReason ? refund.reason : nil)
        case nil: throw OrderError.invalidRequest("the command is missing")
        }
    }
}

extension RPCFault {
    public init(_ fault: CellFault) {
        self.init()
        switch fault {
        case .none: mode = "none"
        case .fail: mode = "fail"
        case .latency(let milliseconds):
            mode = "latency"
            latencyMs = Int32(clamping: milliseconds)
        }
    }

    public func domain() throws(OrderError) -> CellFault {
        switch mode {
        case "none", "": return .none
        case "fail": return .fail
        case "latency" where latencyMs > 0: return .latency(milliseconds: Int(latencyMs))
        default: throw OrderError.invalidRequest("unknown fault mode \(mode)")
        }
    }
}

/// Parses an order id that came over the wire.
public func parseOrderID(_ text: String) throws(OrderError) -> OrderID {
    do {
        return try OrderID(parsing: text)
    } catch {
        throw OrderError(.invalidOrderID, error.description)
    }
}
