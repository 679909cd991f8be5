import CellNotifier
import CellStorage
import Foundation
import MerchantNotifications
import OrderModel
import Testing

/// Merchant notifications end to end in the embedded deployment: an
/// endpoint registered through the control plane, real HTTP to a receiver,
/// the schedule compressed by configuration and driven by the test's clock.
@Suite("Merchant notifications")
struct NotificationTests {
    /// Retries after 1 s and 1 s (of the test's clock), three attempts of 2 s each: long enough for a
    /// receiver in the same process to answer while the other suites load both cores.
    static let notifier = NotifierConfiguration(
        schedule: NotificationSchedule(delays: [.seconds(1), .seconds(1)], repeatDelay: .seconds(1), maximumAttempts: 3),
        attemptTimeout: .seconds(2), pollInterval: .milliseconds(20)
    )

    /// Registers `merchant`'s endpoint at `url` through the control plane's API; the signing secret.
    static func register(_ merchant: String, _ url: String, on test: TestSystem) async throws -> String {
        let set = try await test.client.send(
            .PUT, "/control/admin/merchants/\(merchant)/notify", #"{"url":"\#(url)","allow_private_network":true,"reason":"test receiver"}"#,
            admin: true
        )
        #expect(set.status == 200, "\(String(decoding: set.body, as: UTF8.self))")
        return try #require(set["secret"])
    }

    static func outbox(_ test: TestSystem, _ orderID: String) throws -> any NotificationStore {
        let cell = try OrderID(parsing: orderID).cell
        return try #require(test.system.cells[cell]?.store as? any NotificationStore)
    }

    @Test("a payment, a refund and a close are each notified once, signed, with the order; a merchant without an endpoint is not")
    func notifiedOnceAndSigned() async throws {
        try await NotificationReceiver.run { receiver in
            try await TestSystem.run(notifier: Self.notifier) { test in
                let secret = try await Self.register("m1", receiver.url("/m1"), on: test)
                let paid = try #require(try await test.client.create("m1", "t-1")["order_id"])
                #expect(try await test.client.pay(paid, "pay-1").status == 200)
                #expect(try await test.client.refund(paid, "refund-1", amount: 300).status == 201)
                let closed = try #require(try await test.client.create("m1", "t-2")["order_id"])
                #expect(try await test.client.send(.POST, "/v1/orders/\(closed)/close").status == 200)
                let unregistered = try #require(try await test.client.create("m9", "t-1")["order_id"])
                #expect(try await test.client.pay(unregistered, "pay-9").status == 200)
                // An order that expires unpaid is told as closed, its close_reason EXPIRED.
                let expiring = try #require(try await test.client.create("m1", "t-3", expire: 60)["order_id"])
                test.clock.advance(seconds: 61)
                #expect(await test.system.sweeper.sweepOnce() == 1)

                // Once all four are stored delivered, no attempt of them can come any more: what arrived is all.
                let events = ["\(paid)-2", "\(paid)-3", "\(closed)-2", "\(expiring)-2"]
                try await waitUntil {
                    for event in events {
                        let order = String(event.split(separator: "-")[0])
                        guard try await Self.outbox(test, order).notification(event)?.delivery.state.status == .delivered else { return false }
                    }
                    return true
                }
                let received = receiver.notifications()
                #expect(received.count == 4, "one notification per event: \(received.map(\.eventID))")
                #expect(Set(received.map(\.eventID)) == ["\(paid)-2", "\(paid)-3", "\(closed)-2", "\(expiring)-2"])
                for notification in received {
                    #expect(notification.isSigned(with: secret), "\(notification.eventID) carries a valid signature")
                    #expect(!notification.isSigned(with: secret + "x"))
                    #expect(notification.json["event_id"] as? String == notification.eventID)
                    #expect(notification.path == "/m1")
                }
                let byEvent = Dictionary(uniqueKeysWithValues: received.map { ($0.eventID, $0.json) })
                let payment = try #require(byEvent["\(paid)-2"])
                #expect(payment["event_type"] as? String == "ORDER_PAID" && payment["payment_id"] as? String == "pay-1")
                #expect(payment["amount"] as? Int == 1000 && payment["status_after"] as? String == "PAID")
                #expect((payment["order"] as? [String: Any])?["order_id"] as? String == paid)
                let refund = try #require(byEvent["\(paid)-3"])
                #expect(refund["event_type"] as? String == "ORDER_REFUNDED" && refund["refund_id"] as? String == "refund-1" && refund["amount"] as? Int == 300)
                let close = try #require(byEvent["\(closed)-2"])
                #expect(close["event_type"] as? String == "ORDER_CLOSED" && (close["order"] as? [String: Any])?["close_reason"] as? String == "MERCHANT")
                let expiry = try #require(byEvent["\(expiring)-2"])
                #expect(expiry["event_type"] as? String == "ORDER_CLOSED" && (expiry["order"] as? [String: Any])?["close_reason"] as? String == "EXPIRED")
                #expect(expiry["order_id"] as? String == expiring)
            }
        }
    }

    @Test("an attempt answered 500 or not at all is retried on the schedule and then delivered")
    func retriedThenDelivered() async throws {
        try await NotificationReceiver.run { receiver in
            try await TestSystem.run(notifier: Self.notifier) { test in
                let secret = try await Self.register("m2", receiver.url("/m2"), on: test)
                receiver.queue("/m2", [.fail(500), .hang(.seconds(10))])
                let order = try #require(try await test.client.create("m2", "t-1")["order_id"])
                #expect(try await test.client.pay(order, "pay-1").status == 200)
                let outbox = try Self.outbox(test, order)
                let event = "\(order)-2"
                try await waitUntil { try await outbox.notification(event)?.delivery.state.attempts == 1 }
                #expect(receiver.notifications("/m2").count == 1)
                // Not again before its delay has passed on the clock: an absence, so watched for ten of the notifier's
                // 20 ms rounds (no condition to wait for; NotificationStoreSuite checks the due time exactly).
                try await Task.sleep(for: .milliseconds(200))
                #expect(receiver.notifications("/m2").count == 1)
                test.clock.advance(seconds: 1)
                // The second attempt hangs: the notifier gives up after its 2 s.
                try await waitUntil(timeout: .seconds(20)) { try await outbox.notification(event)?.delivery.state.attempts == 2 }
                let failure = try await outbox.notification(event)?.delivery.state
                #expect(failure.map { "\($0)" }?.contains("no answer within 2000 ms") == true, "\(String(describing: failure))")
                test.clock.advance(seconds: 1)
                try await waitUntil { try await outbox.notification(event)?.delivery.state.status == .delivered }
                let received = receiver.notifications("/m2")
                #expect(received.count == 3 && received.allSatisfy { $0.eventID == event && $0.isSigned(with: secret) })
                #expect(Set(received.map(\.body)).count == 1, "the order did not change between attempts: every attempt sends the same body")
            }
        }
    }

    @Test("a merchant whose endpoint hangs with a backlog of notifications holds up no other merchant's")
    func aHangingMerchantHoldsUpNoOther() async throws {
        // Room for 4 attempts at once, 2 per merchant: m5's backlog of 6 would take every room without the limit.
        // Its attempts hang longer than the test lasts (none ends to make room for another of m5's).
        var notifier = Self.notifier
        notifier.maximumConcurrentDeliveries = 4
        notifier.maximumConcurrentPerMerchant = 2
        notifier.attemptTimeout = .seconds(40)
        notifier.leaseDuration = .seconds(60)
        try await NotificationReceiver.run { receiver in
            try await TestSystem.run(layout: .singlePartition(cells: 1), notifier: notifier) { test in
                _ = try await Self.register("m5", receiver.url("/m5"), on: test)
                _ = try await Self.register("m6", receiver.url("/m6"), on: test)
                receiver.answer("/m5", .hang(.seconds(50)))
                for index in 0..<6 {
                    let order = try #require(try await test.client.create("m5", "t-\(index)")["order_id"])
                    #expect(try await test.client.pay(order, "pay-\(index)").status == 200)
                }
                try await waitUntil { receiver.notifications("/m5").count == 2 }
                // m6's notifications go out while m5's hang, taking the rooms m5 may not have.
                for index in 0..<3 {
                    let order = try #require(try await test.client.create("m6", "t-\(index)")["order_id"])
                    #expect(try await test.client.pay(order, "pay-\(index)").status == 200)
                }
                try await waitUntil { receiver.notifications("/m6").count == 3 }
                #expect(receiver.notifications("/m5").count == 2, "m5 has no more than its 2 attempts under way")
            }
        }
    }

    @Test("a notification never acknowledged ends dead when the schedule ends; other merchants' go on meanwhile")
    func deadAfterTheSchedule() async throws {
        try await NotificationReceiver.run { receiver in
            try await TestSystem.run(layout: .singlePartition(cells: 1), notifier: Self.notifier) { test in
                _ = try await Self.register("m3", receiver.url("/m3"), on: test)
                _ = try await Self.register("m4", receiver.url("/m4"), on: test)
                receiver.answer("/m3", .hang(.seconds(10)))
                let stuck = try #require(try await test.client.create("m3", "t-1")["order_id"])
                #expect(try await test.client.pay(stuck, "pay-1").status == 200)
                let outbox = try Self.outbox(test, stuck)
                // While m3's endpoint hangs, m4's notifications arrive.
                let other = try #require(try await test.client.create("m4", "t-1")["order_id"])
                #expect(try await test.client.pay(other, "pay-2").status == 200)
                try await waitUntil { receiver.notifications("/m4").count == 1 }
                for attempt in 1...3 {
                    try await waitUntil(timeout: .seconds(20)) { try await outbox.notification("\(stuck)-2")?.delivery.state.attempts == attempt }
                    test.clock.advance(seconds: 1)
                }
                try await waitUntil(timeout: .seconds(20)) { try await outbox.notification("\(stuck)-2")?.delivery.state.status == .dead }
                #expect(receiver.notifications("/m3").count == 3)
                // The operator sees it dead, in the overview and listed, and sends it again once the merchant is back.
                let overview = try await test.client.send(.GET, "/control/admin/feed", admin: true)
                let cells = try #require(overview.json["cells"] as? [[String: Any]])
                #expect(cells.count == 1 && cells[0]["dead"] as? Int == 1 && cells[0]["pending"] as? Int == 0, "\(cells)")
                #expect((cells[0]["lease_holder"] as? String)?.hasPrefix("ordercell dev pid") == true)
                let listed = try await test.client.send(.GET, "/control/admin/cells/1/notifications?status=dead", admin: true)
                let dead = try #require(listed.json["notifications"] as? [[String: Any]])
                #expect(dead.map { $0["event_id"] as? String } == ["\(stuck)-2"])
                #expect(dead.first?["attempts"] as? Int == 3 && (dead.first?["last_failure"] as? String)?.contains("no answer") == true)
                receiver.answer("/m3", .acknowledge)
                let redelivered = try await test.client.send(
                    .POST, "/control/admin/cells/1/notifications/redeliver", #"{"reason":"merchant fixed its endpoint"}"#, admin: true
                )
                #expect(redelivered.status == 200 && redelivered.json["redelivered"] as? Int == 1)
                try await waitUntil { try await outbox.notification("\(stuck)-2")?.delivery.state.status == .delivered }
                #expect(receiver.notifications("/m3").count == 4)
                // Bad input to the operator's calls: problems, never a 500.
                for (method, path, body, status) in [
                    ("GET", "/control/admin/cells/1/notifications?status=lost", nil, 400),
                    ("GET", "/control/admin/cells/1/notifications?limit=0", nil, 400),
                    ("GET", "/control/admin/cells/77/notifications", nil, 404),
                    ("POST", "/control/admin/cells/1/notifications/redeliver", #"{"event_ids":[]}"#, 400),
                    ("POST", "/control/admin/cells/1/notifications/redeliver", #"{"event_ids":"all"}"#, 400),
                ] as [(String, String, String?, Int)] {
                    let answer = try await test.client.send(method == "GET" ? .GET : .POST, path, body, admin: true)
                    #expect(answer.status == status, "\(method) \(path): \(answer.status)")
                }
                let viewer = try await test.client.send(.POST, "/control/admin/cells/1/notifications/redeliver", nil, token: TestSystem.viewerToken)
                #expect(viewer.status == 403)
            }
        }
    }
}

extension NotificationDelivery.State {
    var attempts: Int {
        switch self {
        case .pending(let attempts, _, _), .delivered(let attempts, _), .dead(let attempts, _, _): return attempts
        }
    }
}

@Suite("Notify endpoint registration")
struct NotifyEndpointRegistrationTests {
    @Test("bad URLs and merchants are refused with 400; the release is audited and shows no secret; a rollback keeps the endpoint")
    func registrationIsCheckedAndAudited() async throws {
        try await TestSystem.run { test in
            for (merchant, body, code) in [
                ("m1", #"{"url":"http://10.0.0.5/hook"}"#, "invalid_request"),
                ("m1", #"{"url":"http://127.0.0.1:9/hook"}"#, "invalid_request"),
                ("m1", #"{"url":"http://169.254.169.254/latest"}"#, "invalid_request"),
                ("m1", #"{"url":"http://localhost/hook"}"#, "invalid_request"),
                ("m1", #"{"url":"ftp://example.com/hook"}"#, "invalid_request"),
                ("m1", #"{"url":"https://user:pw@example.com/hook"}"#, "invalid_request"),
                ("m1", #"{"url":""}"#, "invalid_request"),
                ("m1", #"{}"#, "invalid_request"),
                ("bad%20merchant", #"{"url":"https://example.com/hook"}"#, "invalid_request"),
            ] {
                let answer = try await test.client.send(.PUT, "/control/admin/merchants/\(merchant)/notify", body, admin: true)
                #expect(answer.status == 400 && answer.code == code, "\(body): \(answer.status) \(String(decoding: answer.body, as: UTF8.self))")
            }
            #expect(try await test.client.send(.GET, "/control/admin/merchants/m1/notify", admin: true).status == 404)
            let viewer = try await test.client.send(
                .PUT, "/control/admin/merchants/m1/notify", #"{"url":"https://example.com/hook"}"#, token: TestSystem.viewerToken
            )
            #expect(viewer.status == 403)

            let set = try await test.client.send(
                .PUT, "/control/admin/merchants/m1/notify", #"{"url":"https://example.com/hook","reason":"onboarding"}"#, admin: true
            )
            #expect(set.status == 200)
            let secret = try #require(set["secret"])
            #expect(secret.hasPrefix("ocn_"))
            let version = try #require(set.json["version"] as? Int)
            // A new URL keeps the secret (none in the answer); asking for one makes a new one.
            let moved = try await test.client.send(.PUT, "/control/admin/merchants/m1/notify", #"{"url":"https://example.com/v2"}"#, admin: true)
            #expect(moved.status == 200 && moved["secret"] == nil)
            let rotated = try await test.client.send(
                .PUT, "/control/admin/merchants/m1/notify", #"{"url":"https://example.com/v2","rotate_secret":true}"#, admin: true
            )
            #expect(rotated["secret"] != nil && rotated["secret"] != secret)
            let shown = try await test.client.send(.GET, "/control/admin/merchants/m1/notify", admin: true)
            #expect(shown["url"] == "https://example.com/v2" && shown["sealed_secret"] == nil)
            // The audit: who, why, and what changed, never a secret, sealed or not.
            let release = try await test.client.send(.GET, "/control/admin/releases/\(version)", admin: true)
            let text = String(decoding: release.body, as: UTF8.self)
            #expect(text.contains("onboarding") && text.contains("notify_endpoints[m1].url"))
            #expect(!text.contains(secret))
            let routing = String(decoding: try await test.client.send(.GET, "/control/admin/routing", admin: true).body, as: UTF8.self)
            #expect(routing.contains("https://example.com/v2") && !routing.contains(secret))
            let sealed = try #require(test.system.control.routingTable.notifyEndpoints["m1"]?.sealedSecret)
            #expect(!routing.contains(sealed) && !text.contains(sealed))
            // A rollback restores routing, never an old notification secret or URL.
            let rollback = try await test.client.send(.POST, "/control/admin/releases/\(version - 1)/rollback", #"{"reason":"test"}"#, admin: true)
            #expect(rollback.status == 200)
            #expect(test.system.control.routingTable.notifyEndpoints["m1"]?.sealedSecret == sealed)
            let removed = try await test.client.send(.DELETE, "/control/admin/merchants/m1/notify", #"{"reason":"offboarding"}"#, admin: true)
            #expect(removed.status == 200)
            #expect(try await test.client.send(.DELETE, "/control/admin/merchants/m1/notify", admin: true).status == 404)
        }
    }
}
