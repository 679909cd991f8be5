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
            try await OrderFlows.closeAndIllegalTransitions(system.client, prefix: "embedded")
            let api = system.client
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
