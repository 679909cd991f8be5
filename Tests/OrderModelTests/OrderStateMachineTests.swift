import Testing

@testable import OrderModel

@Suite("Order state machine")
struct OrderStateMachineTests {
    let machine = OrderStateMachine()
    let start = Timestamp(secondsSinceEpoch: 1_795_301_599)

    /// A new order whose merchant key it holds (``MerchantKeyStatus/verified``), unless told otherwise.
    func newOrder(amount: Int64 = 1000, expireSeconds: Int64 = 60, keyStatus: MerchantKeyStatus = .verified) throws -> Order {
        Order(
            id: try OrderID(cell: CellID(1)!, createdAt: start, sequence: 1), merchantID: "m", outTradeNo: "t",
            amount: amount, currency: Currency(code: "CNY")!, description: nil, createdAt: start,
            expiresAt: start.adding(seconds: expireSeconds), keyStatus: keyStatus
        )
    }

    @Test("only an order holding its merchant key is paid; a rival is closed as a duplicate, never once paid")
    func payNeedsTheMerchantKey() throws {
        for status in [MerchantKeyStatus.reserved, .unindexed] {
            let order = try newOrder(keyStatus: status)
            expectRefusal(.keyUnclaimed) { _ = try machine.decide(.pay(paymentID: "p", amount: 1000), on: order, existingRefund: nil, now: start) }
            let paid = try machine.decide(.pay(paymentID: "p", amount: 1000, keyClaimed: true), on: order, existingRefund: nil, now: start).order
            #expect(paid.status == .paid && paid.keyStatus == .verified)
            expectRefusal(.invalidState) { _ = try machine.decide(.closeDuplicate(holder: nil), on: paid, existingRefund: nil, now: start) }
        }
        let rival = try newOrder(keyStatus: .reserved)
        let holder = try OrderID(cell: CellID(2)!, createdAt: start, sequence: 5)
        guard case .changed(let closed, let event, nil) = try machine.decide(.closeDuplicate(holder: holder), on: rival, existingRefund: nil, now: start) else {
            Issue.record("closing a duplicate changed nothing")
            return
        }
        #expect(closed.status == .closed && closed.closeReason == .duplicate && closed.keyStatus == .duplicate)
        #expect(event.kind == .closed && event.reference == holder.description)
        expectRefusal(.duplicateOrder) { _ = try machine.decide(.pay(paymentID: "p", amount: 1000, keyClaimed: true), on: closed, existingRefund: nil, now: start) }
        // An order marked duplicate while still open (never, but the rule holds) is refused with the duplicate's own code.
        let marked = try newOrder(keyStatus: .duplicate)
        expectRefusal(.duplicateOrder) { _ = try machine.decide(.pay(paymentID: "p", amount: 1000), on: marked, existingRefund: nil, now: start) }
        expectRefusal(.duplicateOrder) { _ = try machine.decide(.pay(paymentID: "p", amount: 1000, keyClaimed: true), on: marked, existingRefund: nil, now: start) }
        // A verified order holds its key: a stale verdict does not close it.
        expectRefusal(.invalidState) { _ = try machine.decide(.closeDuplicate(holder: nil), on: try newOrder(keyStatus: .verified), existingRefund: nil, now: start) }
    }

    func expectRefusal(_ code: OrderErrorCode, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected \(code.rawValue)")
        } catch {
            #expect((error as? OrderError)?.code == code)
        }
    }

    @Test func payThenRefundInPartsThenInFull() throws {
        var order = try newOrder()
        let paid = try machine.decide(.pay(paymentID: "p", amount: 1000), on: order, existingRefund: nil, now: start)
        guard case .changed(let afterPay, let event, nil) = paid else { Issue.record("pay changed nothing"); return }
        #expect(afterPay.status == .paid && event.kind == .paid && event.sequence == 2)
        order = afterPay
        let partial = try machine.decide(.refund(refundID: "r1", amount: 400, reason: nil), on: order, existingRefund: nil, now: start)
        #expect(partial.order.status == .partiallyRefunded && partial.order.refundedAmount == 400 && partial.refund?.amount == 400)
        order = partial.order
        expectRefusal(.refundExceedsAmount) {
            _ = try machine.decide(.refund(refundID: "r2", amount: 601, reason: nil), on: order, existingRefund: nil, now: start)
        }
        let full = try machine.decide(.refund(refundID: "r2", amount: 600, reason: nil), on: order, existingRefund: nil, now: start)
        #expect(full.order.status == .refunded && full.order.refundedAmount == 1000)
        expectRefusal(.refundExceedsAmount) {
            _ = try machine.decide(.refund(refundID: "r3", amount: 1, reason: nil), on: full.order, existingRefund: nil, now: start)
        }
    }

    @Test func repeatsAreIdempotent() throws {
        let order = try newOrder()
        let paid = try machine.decide(.pay(paymentID: "p", amount: 1000), on: order, existingRefund: nil, now: start).order
        #expect(try machine.decide(.pay(paymentID: "p", amount: 1000), on: paid, existingRefund: nil, now: start) == .unchanged(paid, refund: nil))
        expectRefusal(.invalidState) { _ = try machine.decide(.pay(paymentID: "other", amount: 1000), on: paid, existingRefund: nil, now: start) }
        expectRefusal(.amountMismatch) { _ = try machine.decide(.pay(paymentID: "p", amount: 999), on: paid, existingRefund: nil, now: start) }
        let refund = Refund(refundID: "r", orderID: order.id, amount: 300, reason: nil, createdAt: start)
        #expect(
            try machine.decide(.refund(refundID: "r", amount: 300, reason: nil), on: paid, existingRefund: refund, now: start)
                == .unchanged(paid, refund: refund)
        )
        expectRefusal(.refundIDConflict) {
            _ = try machine.decide(.refund(refundID: "r", amount: 301, reason: nil), on: paid, existingRefund: refund, now: start)
        }
        let closed = try machine.decide(.close, on: order, existingRefund: nil, now: start).order
        #expect(try machine.decide(.close, on: closed, existingRefund: nil, now: start) == .unchanged(closed, refund: nil))
    }

    @Test func illegalTransitionsAreRefused() throws {
        let order = try newOrder()
        expectRefusal(.amountMismatch) { _ = try machine.decide(.pay(paymentID: "p", amount: 1), on: order, existingRefund: nil, now: start) }
        expectRefusal(.invalidState) { _ = try machine.decide(.refund(refundID: "r", amount: 1, reason: nil), on: order, existingRefund: nil, now: start) }
        let closed = try machine.decide(.close, on: order, existingRefund: nil, now: start).order
        expectRefusal(.invalidState) { _ = try machine.decide(.pay(paymentID: "p", amount: 1000), on: closed, existingRefund: nil, now: start) }
        expectRefusal(.invalidState) { _ = try machine.decide(.refund(refundID: "r", amount: 1, reason: nil), on: closed, existingRefund: nil, now: start) }
        let paid = try machine.decide(.pay(paymentID: "p", amount: 1000), on: order, existingRefund: nil, now: start).order
        expectRefusal(.invalidState) { _ = try machine.decide(.close, on: paid, existingRefund: nil, now: start) }
    }

    @Test func expiry() throws {
        let order = try newOrder(expireSeconds: 60)
        let late = start.adding(seconds: 60)
        expectRefusal(.orderExpired) { _ = try machine.decide(.pay(paymentID: "p", amount: 1000), on: order, existingRefund: nil, now: late) }
        #expect(try machine.decide(.expire, on: order, existingRefund: nil, now: start.adding(seconds: 59)) == .unchanged(order, refund: nil))
        let expired = try machine.decide(.expire, on: order, existingRefund: nil, now: late)
        #expect(expired.order.status == .closed && expired.order.closeReason == .expired)
        expectRefusal(.orderExpired) {
            _ = try machine.decide(.pay(paymentID: "p", amount: 1000), on: expired.order, existingRefund: nil, now: late)
        }
    }

    @Test func createRequestValidation() {
        func refused(_ body: () throws -> CreateOrderRequest) -> Bool {
            do { _ = try body(); return false } catch { return (error as? OrderError)?.code == .invalidRequest }
        }
        #expect(refused { try CreateOrderRequest(merchantID: "", outTradeNo: "t", amount: 1, currency: "CNY", description: nil, expireSeconds: nil) })
        #expect(refused { try CreateOrderRequest(merchantID: String(repeating: "m", count: 33), outTradeNo: "t", amount: 1, currency: "CNY", description: nil, expireSeconds: nil) })
        #expect(refused { try CreateOrderRequest(merchantID: "m", outTradeNo: "t t", amount: 1, currency: "CNY", description: nil, expireSeconds: nil) })
        #expect(refused { try CreateOrderRequest(merchantID: "m", outTradeNo: "t", amount: 0, currency: "CNY", description: nil, expireSeconds: nil) })
        #expect(refused { try CreateOrderRequest(merchantID: "m", outTradeNo: "t", amount: -5, currency: "CNY", description: nil, expireSeconds: nil) })
        #expect(refused { try CreateOrderRequest(merchantID: "m", outTradeNo: "t", amount: 1, currency: "XYZ", description: nil, expireSeconds: nil) })
        #expect(refused { try CreateOrderRequest(merchantID: "m", outTradeNo: "t", amount: 1, currency: "cny", description: nil, expireSeconds: nil) })
        #expect(refused { try CreateOrderRequest(merchantID: "m", outTradeNo: "t", amount: 1, currency: "CNY", description: String(repeating: "d", count: 257), expireSeconds: nil) })
        #expect(refused { try CreateOrderRequest(merchantID: "m", outTradeNo: "t", amount: 1, currency: "CNY", description: nil, expireSeconds: 0) })
        #expect(!refused { try CreateOrderRequest(merchantID: "m", outTradeNo: "t", amount: 1, currency: "JPY", description: "茶", expireSeconds: 60) })
    }
}
