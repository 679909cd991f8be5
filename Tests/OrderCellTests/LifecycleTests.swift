import Foundation
import Testing

@Suite("Order lifecycle over HTTP")
struct LifecycleTests {
    @Test func createPayRefundInPartsThenInFull() async throws {
        try await TestSystem.run { system in
            let api = system.client
            let created = try await api.create("m1", "life-1", amount: 1000)
            #expect(created.status == 201)
            #expect(created["status"] == "CREATED" && created["refunded_amount"] == "0")
            for field in ["order_id", "cell_id", "merchant_id", "out_trade_no", "amount", "currency", "status", "refunded_amount", "created_at", "expires_at"] {
                #expect(created.json[field] != nil, "order field \(field)")
            }
            let id = try #require(created["order_id"])
            let repeated = try await api.create("m1", "life-1", amount: 1000)
            #expect(repeated.status == 200 && repeated["order_id"] == id)
            let conflict = try await api.create("m1", "life-1", amount: 999)
            #expect(conflict.status == 409 && conflict.code == "out_trade_no_conflict")

            let fetched = try await api.send(.GET, "/v1/orders/\(id)")
            #expect(fetched.status == 200 && fetched["order_id"] == id)
            #expect(try await api.send(.GET, "/v1/orders/\(id)?consistency=eventual").status == 200)

            let paid = try await api.pay(id, "pay-1")
            #expect(paid.status == 200 && paid["status"] == "PAID" && paid["payment_id"] == "pay-1")
            #expect(try await api.pay(id, "pay-1").status == 200, "a repeated payment is idempotent")
            let secondPayment = try await api.pay(id, "pay-2")
            #expect(secondPayment.status == 409 && secondPayment.code == "invalid_state")
            let closePaid = try await api.send(.POST, "/v1/orders/\(id)/close")
            #expect(closePaid.status == 409 && closePaid.code == "invalid_state")

            let partial = try await api.refund(id, "r-1", amount: 300)
            #expect(partial.status == 201)
            #expect((partial.json["order"] as? [String: Any])?["status"] as? String == "PARTIALLY_REFUNDED")
            #expect(try await api.refund(id, "r-1", amount: 300).status == 200, "a repeated refund is idempotent")
            let changedRepeat = try await api.refund(id, "r-1", amount: 301)
            #expect(changedRepeat.status == 409 && changedRepeat.code == "refund_id_conflict")
            let tooMuch = try await api.refund(id, "r-2", amount: 701)
            #expect(tooMuch.status == 409 && tooMuch.code == "refund_exceeds_amount")
            let rest = try await api.refund(id, "r-2", amount: 700)
            #expect(rest.status == 201)
            let order = rest.json["order"] as? [String: Any]
            #expect(order?["status"] as? String == "REFUNDED" && order?["refunded_amount"] as? Int == 1000)
            let afterFull = try await api.refund(id, "r-3", amount: 1)
            #expect(afterFull.status == 409 && afterFull.code == "refund_exceeds_amount")

            let refunds = try await api.send(.GET, "/v1/orders/\(id)/refunds")
            #expect((refunds.json["refunds"] as? [[String: Any]])?.compactMap { $0["refund_id"] as? String } == ["r-1", "r-2"])
            let events = try await api.send(.GET, "/v1/orders/\(id)/events")
            let kinds = (events.json["events"] as? [[String: Any]])?.compactMap { $0["type"] as? String }
            #expect(kinds == ["ORDER_CREATED", "ORDER_PAID", "ORDER_REFUNDED", "ORDER_REFUNDED"])
        }
    }

    @Test func closeAndEveryIllegalTransition() async throws {
        try await TestSystem.run { system in
            let api = system.client
            let id = try #require(try await api.create("m1", "close-1").self["order_id"])
            let mismatch = try await api.pay(id, "p", amount: 999)
            #expect(mismatch.status == 409 && mismatch.code == "amount_mismatch")
            let unpaidRefund = try await api.refund(id, "r", amount: 1)
            #expect(unpaidRefund.status == 409 && unpaidRefund.code == "invalid_state")
            let closed = try await api.send(.POST, "/v1/orders/\(id)/close")
            #expect(closed.status == 200 && closed["status"] == "CLOSED" && closed["close_reason"] == "MERCHANT")
            #expect(try await api.send(.POST, "/v1/orders/\(id)/close").status == 200, "closing twice is idempotent")
            let payClosed = try await api.pay(id, "p")
            #expect(payClosed.status == 409 && payClosed.code == "invalid_state")
            let refundClosed = try await api.refund(id, "r", amount: 1)
            #expect(refundClosed.status == 409 && refundClosed.code == "invalid_state")

            // Expiry: payment refused once the order expired, and the sweep closes it.
            let expiring = try #require(try await api.create("m1", "exp-1", expire: 60).self["order_id"])
            system.clock.advance(seconds: 61)
            let late = try await api.pay(expiring, "p")
            #expect(late.status == 409 && late.code == "order_expired")
            #expect(await system.system.sweeper.sweepOnce() == 1)
            let swept = try await api.send(.GET, "/v1/orders/\(expiring)")
            #expect(swept["status"] == "CLOSED" && swept["close_reason"] == "EXPIRED")
            let lateAgain = try await api.pay(expiring, "p")
            #expect(lateAgain.status == 409 && lateAgain.code == "order_expired")
        }
    }

    @Test func racingClientsNeverPayTwiceOrOverRefund() async throws {
        try await TestSystem.run { system in
            let api = system.client
            let id = try #require(try await api.create("m1", "race-1", amount: 1000).self["order_id"])
            // 8 clients race the same payment id: every answer is the one payment.
            let payments = try await concurrently(8, width: 8) { _ in try await api.pay(id, "pay-same") }
            #expect(payments.allSatisfy { $0.status == 200 && $0["payment_id"] == "pay-same" })
            // 8 clients race ten refund ids of 150 each: only six fit in 1000.
            let refunds = try await concurrently(80, width: 8) { index in try await api.refund(id, "r-\(index % 10)", amount: 150) }
            #expect(refunds.allSatisfy { [200, 201, 409].contains($0.status) })
            #expect(refunds.filter { $0.status == 201 }.count == 6)
            let order = try await api.send(.GET, "/v1/orders/\(id)")
            #expect(order.json["refunded_amount"] as? Int == 900)
            let listed = try await api.send(.GET, "/v1/orders/\(id)/refunds").json["refunds"] as? [[String: Any]]
            #expect(listed?.count == 6 && listed?.reduce(0) { $0 + ($1["amount"] as? Int ?? 0) } == 900)

            // 8 clients race different payment ids on one order: exactly one wins.
            let other = try #require(try await api.create("m1", "race-2", amount: 1000).self["order_id"])
            let contested = try await concurrently(8, width: 8) { index in try await api.pay(other, "pay-\(index)") }
            #expect(contested.filter { $0.status == 200 }.count == 1)
            #expect(contested.filter { $0.status == 409 && $0.code == "invalid_state" }.count == 7)
            let events = try await api.send(.GET, "/v1/orders/\(other)/events").json["events"] as? [[String: Any]]
            #expect(events?.filter { $0["type"] as? String == "ORDER_PAID" }.count == 1)
        }
    }
}
