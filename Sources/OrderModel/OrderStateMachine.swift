/// The order state machine: decides what a command does to an order.
///
/// Pure: the store reads the order (and the refund with the command's id)
/// inside a transaction, asks the machine, and persists the decision in
/// that same transaction. Time comes in as a parameter.
public struct OrderStateMachine: Sendable {
    /// What the store must do.
    public enum Decision: Sendable, Equatable {
        /// Nothing to write: the command was already applied (idempotent replay)
        /// or has nothing to do. Answer with the order (and refund) as they are.
        case unchanged(Order, refund: Refund?)
        /// Write the new order, append the event, insert the refund if any.
        case changed(Order, event: OrderEvent, newRefund: Refund?)

        public var order: Order {
            switch self {
            case .unchanged(let order, _), .changed(let order, _, _): return order
            }
        }

        public var refund: Refund? {
            switch self {
            case .unchanged(_, let refund): return refund
            case .changed(_, _, let refund): return refund
            }
        }
    }

    public init() {}

    /// Decides the effect of `command` on `order` at `now`.
    ///
    /// - Parameter existingRefund: the order's refund with the command's
    ///   refund id, if the command is a refund and one exists.
    public func decide(
        _ command: OrderCommand, on order: Order, existingRefund: Refund?, now: Timestamp
    ) throws(OrderError) -> Decision {
        switch command {
        case .pay(let paymentID, let amount, let keyClaimed):
            return try pay(order, paymentID: paymentID, amount: amount, keyClaimed: keyClaimed, now: now)
        case .close:
            return try close(order, now: now)
        case .expire:
            return expire(order, now: now)
        case .closeDuplicate(let holder):
            return try closeDuplicate(order, holder: holder, now: now)
        case .refund(let refundID, let amount, let reason):
            return try refund(order, refundID: refundID, amount: amount, reason: reason, existing: existingRefund, now: now)
        }
    }

    private func pay(_ order: Order, paymentID: String, amount: Int64, keyClaimed: Bool, now: Timestamp) throws(OrderError) -> Decision {
        switch order.status {
        case .created:
            guard amount == order.amount else {
                throw OrderError(.amountMismatch, "payment amount \(amount) differs from the order amount \(order.amount)")
            }
            guard now < order.expiresAt else {
                throw OrderError(.orderExpired, "the order expired at \(order.expiresAt) and can no longer be paid")
            }
            // At most one order per merchant key is ever paid: the one that holds the key.
            guard order.keyStatus != .duplicate else {
                throw OrderError(.duplicateOrder, "another order holds out_trade_no \(order.outTradeNo); this one cannot be paid")
            }
            guard order.keyStatus == .verified || keyClaimed else {
                throw OrderError(.keyUnclaimed, "order \(order.id) must claim out_trade_no \(order.outTradeNo) in the merchant-key index before it is paid")
            }
            var paid = order
            paid.keyStatus = .verified
            paid.status = .paid
            paid.paymentID = paymentID
            paid.paidAt = now
            return changed(paid, kind: .paid, now: now, amount: amount, reference: paymentID)
        case .paid, .partiallyRefunded, .refunded:
            guard order.paymentID == paymentID else {
                throw OrderError(.invalidState, "the order is already paid by another payment")
            }
            guard amount == order.amount else {
                throw OrderError(.amountMismatch, "payment amount \(amount) differs from the order amount \(order.amount)")
            }
            return .unchanged(order, refund: nil)
        case .closed:
            if order.closeReason == .expired {
                throw OrderError(.orderExpired, "the order expired unpaid and was closed")
            }
            if order.closeReason == .duplicate {
                throw OrderError(.duplicateOrder, "another order holds out_trade_no \(order.outTradeNo); this one was closed as a duplicate")
            }
            throw OrderError(.invalidState, "the order is closed and can no longer be paid")
        }
    }

    private func close(_ order: Order, now: Timestamp) throws(OrderError) -> Decision {
        switch order.status {
        case .created:
            var closed = order
            closed.status = .closed
            closed.closeReason = .merchant
            closed.closedAt = now
            return changed(closed, kind: .closed, now: now, amount: nil, reference: nil)
        case .closed:
            return .unchanged(order, refund: nil)
        case .paid, .partiallyRefunded, .refunded:
            throw OrderError(.invalidState, "a paid order cannot be closed; refund it instead")
        }
    }

    /// A rival of the key's holder: closed if unpaid (it can never be paid), left as it is otherwise.
    private func closeDuplicate(_ order: Order, holder: OrderID?, now: Timestamp) throws(OrderError) -> Decision {
        // A verified order holds its key: a stale verdict never closes it.
        guard order.keyStatus != .verified else {
            throw OrderError(.invalidState, "order \(order.id) holds its out_trade_no; it is not a duplicate")
        }
        switch order.status {
        case .created:
            var closed = order
            closed.status = .closed
            closed.closeReason = .duplicate
            closed.closedAt = now
            closed.keyStatus = .duplicate
            return changed(closed, kind: .closed, now: now, amount: nil, reference: holder?.description)
        case .closed:
            // Closed already (expired, or by the merchant): nothing to close; the reconciler marks its key status.
            return .unchanged(order, refund: nil)
        case .paid, .partiallyRefunded, .refunded:
            throw OrderError(.invalidState, "order \(order.id) is paid and holds its out_trade_no; it is not a duplicate")
        }
    }

    private func expire(_ order: Order, now: Timestamp) -> Decision {
        guard order.status == .created, now >= order.expiresAt else { return .unchanged(order, refund: nil) }
        var closed = order
        closed.status = .closed
        closed.closeReason = .expired
        closed.closedAt = now
        return changed(closed, kind: .expired, now: now, amount: nil, reference: nil)
    }

    private func refund(
        _ order: Order, refundID: String, amount: Int64, reason: String?, existing: Refund?, now: Timestamp
    ) throws(OrderError) -> Decision {
        if let existing {
            guard existing.amount == amount else {
                throw OrderError(
                    .refundIDConflict,
                    "refund \(refundID) was already made for \(existing.amount), not \(amount)"
                )
            }
            return .unchanged(order, refund: existing)
        }
        switch order.status {
        case .paid, .partiallyRefunded:
            let remaining = order.amount - order.refundedAmount
            guard amount <= remaining else {
                throw OrderError(
                    .refundExceedsAmount,
                    "refund of \(amount) exceeds the \(remaining) still refundable of \(order.amount)"
                )
            }
            var refunded = order
            refunded.refundedAmount += amount
            refunded.status = refunded.refundedAmount == order.amount ? .refunded : .partiallyRefunded
            let refund = Refund(refundID: refundID, orderID: order.id, amount: amount, reason: reason, createdAt: now)
            return changed(refunded, kind: .refunded, now: now, amount: amount, reference: refundID, refund: refund)
        case .refunded:
            throw OrderError(.refundExceedsAmount, "the order is already fully refunded")
        case .created:
            throw OrderError(.invalidState, "an unpaid order cannot be refunded")
        case .closed:
            throw OrderError(.invalidState, "a closed order cannot be refunded")
        }
    }

    private func changed(
        _ order: Order, kind: OrderEventKind, now: Timestamp, amount: Int64?, reference: String?,
        refund: Refund? = nil
    ) -> Decision {
        var next = order
        next.updatedAt = now
        next.revision = order.revision + 1
        let event = OrderEvent(
            orderID: order.id, sequence: next.revision, kind: kind, at: now, amount: amount,
            reference: reference, statusAfter: next.status
        )
        return .changed(next, event: event, newRefund: refund)
    }

    /// The event that records an order's creation.
    public static func creationEvent(of order: Order) -> OrderEvent {
        OrderEvent(
            orderID: order.id, sequence: 1, kind: .created, at: order.createdAt, amount: order.amount,
            reference: order.outTradeNo, statusAfter: .created
        )
    }
}
