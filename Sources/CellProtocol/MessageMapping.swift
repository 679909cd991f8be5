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
        keyStatus = order.keyStatus.rawValue
    }

    public func domain() throws -> Order {
        guard let currency = Currency(code: currency), let status = OrderStatus(rawValue: status),
            let keyStatus = MerchantKeyStatus(rawValue: keyStatus)
        else {
            throw RPCDecodingError("order \(orderID) has an unknown currency, status or key status")
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
            updatedAt: Timestamp(millisecondsSinceEpoch: updatedAtMs), revision: Int(revision), keyStatus: keyStatus
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

extension Ordercell_Cell_V1_FeedEvent {
    public init(_ feed: OrderModel.FeedEvent) {
        self.init()
        transaction = feed.position.transaction
        eventPosition = feed.position.event
        orderID = feed.event.orderID.description
        merchantID = feed.merchantID
        event = RPCEvent(feed.event)
    }

    public func domain() throws -> OrderModel.FeedEvent {
        OrderModel.FeedEvent(
            position: EventFeedPosition(transaction: transaction, event: eventPosition), merchantID: merchantID,
            event: try event.domain(orderID: try OrderID(parsing: orderID))
        )
    }
}

extension Ordercell_Cell_V1_NotificationRecord {
    public init(_ record: NotificationRecord) {
        self.init()
        eventID = record.eventID
        merchantID = record.merchantID
        orderID = record.orderID
        kind = record.kind.rawValue
        status = record.status.rawValue
        attempts = Int32(clamping: record.attempts)
        if let dueAt = record.dueAt { dueAtMs = dueAt.millisecondsSinceEpoch }
        if let finishedAt = record.finishedAt { finishedAtMs = finishedAt.millisecondsSinceEpoch }
        if let lastFailure = record.lastFailure { self.lastFailure = lastFailure }
        createdAtMs = record.createdAt.millisecondsSinceEpoch
    }

    public func domain() throws -> NotificationRecord {
        guard let kind = OrderEventKind(rawValue: kind), let status = NotificationStatus(rawValue: status) else {
            throw RPCDecodingError("notification \(eventID) has an unknown kind or status")
        }
        return NotificationRecord(
            eventID: eventID, merchantID: merchantID, orderID: orderID, kind: kind, status: status, attempts: Int(attempts),
            dueAt: hasDueAtMs ? Timestamp(millisecondsSinceEpoch: dueAtMs) : nil,
            finishedAt: hasFinishedAtMs ? Timestamp(millisecondsSinceEpoch: finishedAtMs) : nil, lastFailure: hasLastFailure ? lastFailure : nil,
            createdAt: Timestamp(millisecondsSinceEpoch: createdAtMs)
        )
    }
}

extension Ordercell_Cell_V1_NotifierStatusReply {
    public init(_ page: NotifierStatusPage) {
        self.init()
        cursorTransaction = page.backlog.cursor.transaction
        cursorEvent = page.backlog.cursor.event
        pending = Int32(clamping: page.backlog.pending)
        due = Int32(clamping: page.backlog.due)
        dead = Int32(clamping: page.backlog.dead)
        if let oldest = page.backlog.oldestPendingSince { oldestPendingSinceMs = oldest.millisecondsSinceEpoch }
        if let holder = page.backlog.leaseHolder { leaseHolder = holder }
        if let expiry = page.backlog.leaseExpiresAt { leaseExpiresAtMs = expiry.millisecondsSinceEpoch }
        feedLagMs = page.feedLagMilliseconds
        notifications = page.notifications.map(Ordercell_Cell_V1_NotificationRecord.init)
    }

    public func domain() throws -> NotifierStatusPage {
        NotifierStatusPage(
            backlog: NotificationBacklog(
                cursor: EventFeedPosition(transaction: cursorTransaction, event: cursorEvent), pending: Int(pending), due: Int(due), dead: Int(dead),
                oldestPendingSince: hasOldestPendingSinceMs ? Timestamp(millisecondsSinceEpoch: oldestPendingSinceMs) : nil,
                leaseHolder: hasLeaseHolder ? leaseHolder : nil,
                leaseExpiresAt: hasLeaseExpiresAtMs ? Timestamp(millisecondsSinceEpoch: leaseExpiresAtMs) : nil
            ),
            feedLagMilliseconds: feedLagMs, notifications: try notifications.map { try $0.domain() }
        )
    }
}

extension Ordercell_Cell_V1_CreateOrderRequest {
    public init(_ request: CreateOrderRequest, keyStatus: MerchantKeyStatus = .reserved) {
        self.init()
        self.keyStatus = keyStatus.rawValue
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

    /// The new order's key status (empty: reserved).
    public func domainKeyStatus() throws(OrderError) -> MerchantKeyStatus {
        guard !keyStatus.isEmpty else { return .reserved }
        guard let status = MerchantKeyStatus(rawValue: keyStatus) else { throw OrderError.invalidRequest("unknown key status \(keyStatus)") }
        return status
    }
}

extension Ordercell_Cell_V1_ApplyCommandRequest {
    public init(_ command: OrderCommand, orderID: OrderID) {
        self.init()
        self.orderID = orderID.description
        switch command {
        case .pay(let paymentID, let amount, let keyClaimed):
            var pay = Ordercell_Cell_V1_PayCommand()
            pay.paymentID = paymentID
            pay.amount = amount
            pay.keyClaimed = keyClaimed
            self.command = .pay(pay)
        case .closeDuplicate(let holder):
            var close = Ordercell_Cell_V1_CloseDuplicateCommand()
            if let holder { close.holderOrderID = holder.description }
            self.command = .closeDuplicate(close)
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
        case .pay(let pay):
            guard case .pay(let paymentID, let amount, _) = try OrderCommand.validatedPay(paymentID: pay.paymentID, amount: pay.amount) else {
                throw OrderError.invalidRequest("not a payment")
            }
            return .pay(paymentID: paymentID, amount: amount, keyClaimed: pay.keyClaimed)
        case .closeDuplicate(let close):
            return .closeDuplicate(holder: close.holderOrderID.isEmpty ? nil : try parseOrderID(close.holderOrderID))
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
        case .lateAnswer(let milliseconds):
            mode = "late_answer"
            latencyMs = Int32(clamping: milliseconds)
        }
    }

    public func domain() throws(OrderError) -> CellFault {
        switch mode {
        case "none", "": return .none
        case "fail": return .fail
        case "latency" where latencyMs > 0: return .latency(milliseconds: Int(latencyMs))
        case "late_answer" where latencyMs > 0: return .lateAnswer(milliseconds: Int(latencyMs))
        default: throw OrderError.invalidRequest("unknown fault mode \(mode)")
        }
    }
}

extension Ordercell_Cell_V1_MerchantKeyRef {
    public init(_ key: MerchantKey, consistency: ReadConsistency = .strong) {
        self.init()
        merchantID = key.merchantID
        outTradeNo = key.outTradeNo
        eventual = consistency == .eventual
    }

    /// The validated key; invalid fields are refused like at the proxy.
    public func domain() throws(OrderError) -> MerchantKey {
        try RequestLimits.checkIdentifier(merchantID, field: "merchant_id", length: RequestLimits.merchantIDLength)
        try RequestLimits.checkIdentifier(outTradeNo, field: "out_trade_no", length: RequestLimits.outTradeNoLength)
        return MerchantKey(merchantID: merchantID, outTradeNo: outTradeNo)
    }

    public var consistency: ReadConsistency { eventual ? .eventual : .strong }
}

/// Parses a cell number that came over the wire.
public func parseCellID(_ value: Int32, field: String) throws(OrderError) -> CellID {
    guard let cell = CellID(Int(value)) else { throw OrderError.invalidRequest("\(field) \(value) is not a cell number") }
    return cell
}

extension Ordercell_Cell_V1_KeyBindingReply {
    public init(_ binding: MerchantKeyBinding) {
        self.init()
        ownerCell = Int32(binding.owner.rawValue)
        if let holder = binding.holder { holderOrderID = holder.description }
        movable = binding.movableByCaller
    }

    public func domain() throws -> MerchantKeyBinding {
        MerchantKeyBinding(
            owner: try parseCellID(ownerCell, field: "owner_cell"), holder: holderOrderID.isEmpty ? nil : try parseOrderID(holderOrderID),
            movableByCaller: movable
        )
    }
}

extension Ordercell_Cell_V1_ClaimKeyReply {
    public init(_ claim: MerchantKeyClaim) {
        self.init()
        switch claim {
        case .holds: outcome = "holds"
        case .heldBy(let holder):
            outcome = "held_by"
            holderOrderID = holder.description
        case .reservedFor(let owner):
            outcome = "reserved_for"
            ownerCell = Int32(owner.rawValue)
        }
    }

    public func domain() throws -> MerchantKeyClaim {
        switch outcome {
        case "holds": return .holds
        case "held_by": return .heldBy(try parseOrderID(holderOrderID))
        case "reserved_for": return .reservedFor(try parseCellID(ownerCell, field: "owner_cell"))
        default: throw RPCDecodingError("unknown claim outcome '\(outcome)'")
        }
    }
}

extension Ordercell_Cell_V1_KeyEntry {
    public init(_ entry: MerchantKeyEntry) {
        self.init()
        key = Ordercell_Cell_V1_MerchantKeyRef(entry.key)
        ownerCell = Int32(entry.owner.rawValue)
        if let holder = entry.holder { holderOrderID = holder.description }
        attempt = entry.attempt
        abandonedCells = entry.abandoned.map { Int32($0.rawValue) }
        revision = Int32(clamping: entry.revision)
        createdAtMs = entry.createdAt.millisecondsSinceEpoch
        updatedAtMs = entry.updatedAt.millisecondsSinceEpoch
    }

    public func domain() throws -> MerchantKeyEntry {
        MerchantKeyEntry(
            key: try key.domain(), owner: try parseCellID(ownerCell, field: "owner_cell"),
            holder: holderOrderID.isEmpty ? nil : try parseOrderID(holderOrderID), attempt: attempt,
            abandoned: try abandonedCells.map { cell throws(OrderError) in try parseCellID(cell, field: "abandoned_cells") },
            revision: Int(revision), createdAt: Timestamp(millisecondsSinceEpoch: createdAtMs),
            updatedAt: Timestamp(millisecondsSinceEpoch: updatedAtMs)
        )
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
