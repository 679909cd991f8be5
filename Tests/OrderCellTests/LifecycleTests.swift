import Foundation
import Testing

@Suite("Order lifecycle over HTTP")
struct LifecycleTests {
    @Test func createPayRefundInPartsThenInFull() async throws {
        try await TestSystem.run { system in
            try await OrderFlows.lifecycle(system.client, prefix: "embedded")
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
            try await OrderFlows.racing(system.client, prefix: "embedded")
        }
    }
}
