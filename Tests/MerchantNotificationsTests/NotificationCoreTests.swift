import Foundation
import MerchantNotifications
import OrderModel
import Testing

@Suite("Merchant notifications: schedule, delivery, signature, URLs")
struct NotificationCoreTests {
    let start = Timestamp(secondsSinceEpoch: 1_800_000_000)

    @Test("the standard schedule is WeChat Pay's: 15 s, 15 s, 30 s, 3, 10, 20, 30, 30, 30, 60 min, 3, 3, 3, 6, 6 h — 16 attempts over 24 h 4 min")
    func standardSchedule() throws {
        let schedule = NotificationSchedule.standard
        #expect(
            (1...15).map { schedule.delay(after: $0) }
                == [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600].map { Duration.seconds($0) }
        )
        #expect(schedule.maximumAttempts == 16 && schedule.delay(after: 16) == nil)
        #expect(schedule.span == .seconds(24 * 3600 + 4 * 60))
        // Decoded from configuration, a schedule is checked.
        var object = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(schedule)) as? [String: Any])
        object["maximumAttempts"] = 0
        let decoded = try JSONDecoder().decode(NotificationSchedule.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(throws: OrderError.self) { try decoded.validated() }
        #expect(try schedule.validated() == schedule)
    }

    @Test("a delivery is retried on its schedule after failures, delivered on a 2xx, dead when the schedule ends, and redelivered by an operator")
    func deliveryStates() {
        let schedule = NotificationSchedule(delays: [.milliseconds(100), .milliseconds(200)], repeatDelay: .milliseconds(300), maximumAttempts: 4)
        var delivery = NotificationDelivery(eventID: "order-1", createdAt: start)
        #expect(delivery.isDue(at: start))
        delivery.record(.failed("500"), at: start, schedule: schedule)
        #expect(delivery.state == .pending(attempts: 1, due: start.adding(milliseconds: 100), lastFailure: "500"))
        #expect(!delivery.isDue(at: start.adding(milliseconds: 99)) && delivery.isDue(at: start.adding(milliseconds: 100)))
        delivery.record(.failed("timeout"), at: start.adding(milliseconds: 100), schedule: schedule)
        delivery.record(.failed("timeout"), at: start.adding(milliseconds: 300), schedule: schedule)
        #expect(delivery.state == .pending(attempts: 3, due: start.adding(milliseconds: 600), lastFailure: "timeout"))
        delivery.record(.failed("503"), at: start.adding(milliseconds: 600), schedule: schedule)
        #expect(delivery.state == .dead(attempts: 4, at: start.adding(milliseconds: 600), lastFailure: "503"))
        #expect(!delivery.isDue(at: start.adding(seconds: 3600)))
        // An operator redelivers: due at once, the schedule anew; then acknowledged.
        let redelivered = delivery.redeliver(at: start.adding(seconds: 10))
        #expect(redelivered)
        #expect(delivery.isDue(at: start.adding(seconds: 10)))
        delivery.record(.acknowledged, at: start.adding(seconds: 10), schedule: schedule)
        #expect(delivery.state == .delivered(attempts: 1, at: start.adding(seconds: 10)))
        // Nothing moves a delivered notification.
        delivery.record(.failed("late"), at: start.adding(seconds: 11), schedule: schedule)
        let again = delivery.redeliver(at: start.adding(seconds: 12))
        #expect(!again)
        #expect(delivery.state == .delivered(attempts: 1, at: start.adding(seconds: 10)))
    }

    @Test("the signature covers the timestamp and the body; a merchant's check refuses another body, secret or an old timestamp")
    func signature() {
        let body = Data(#"{"event_id":"o-2","type":"ORDER_PAID"}"#.utf8)
        let signature = NotificationSignature.sign(body: body, timestamp: 1_800_000_000, secret: "whsec-1")
        #expect(signature.hasPrefix("v1=") && signature.count == 3 + 64)
        #expect(NotificationSignature.verify(body: body, timestamp: 1_800_000_000, signature: signature, secret: "whsec-1", now: 1_800_000_100))
        #expect(!NotificationSignature.verify(body: Data("{}".utf8), timestamp: 1_800_000_000, signature: signature, secret: "whsec-1", now: 1_800_000_100))
        #expect(!NotificationSignature.verify(body: body, timestamp: 1_800_000_000, signature: signature, secret: "whsec-2", now: 1_800_000_100))
        #expect(!NotificationSignature.verify(body: body, timestamp: 1_800_000_001, signature: signature, secret: "whsec-1", now: 1_800_000_100))
        #expect(!NotificationSignature.verify(body: body, timestamp: 1_800_000_000, signature: signature, secret: "whsec-1", now: 1_800_000_301))
        // A crafted timestamp is refused, not an overflow.
        #expect(!NotificationSignature.verify(body: body, timestamp: .min, signature: signature, secret: "whsec-1", now: 1_800_000_100))
        #expect(!NotificationSignature.verify(body: body, timestamp: .max, signature: signature, secret: "whsec-1", now: .min))
        // The documented construction, as Python's hmac computes it: HMAC-SHA256 of "<timestamp>.<body>", hex.
        #expect(
            NotificationSignature.sign(body: Data("{}".utf8), timestamp: 0, secret: "key")
                == "v1=7314351dd949aa7ec06f50fc2c96e618291447672c9b7f10b49d1ce46dad00b3"
        )
    }

    @Test("notify URLs: http or https with a host; no credentials, loopback, link-local or private addresses unless allowed")
    func urls() throws {
        let policy = NotifyURLPolicy()
        let target = try policy.check("https://shop.example.com:8443/hooks/ordercell?x=1")
        #expect(target == NotifyURLPolicy.Target(secure: true, host: "shop.example.com", port: 8443, path: "/hooks/ordercell?x=1"))
        #expect(try policy.check("http://203.0.113.7").port == 80)
        #expect(try policy.check("https://[2001:db8::1]/n").host == "2001:db8::1")
        for bad in [
            "ftp://shop.example.com/", "https://", "https://user:pass@shop.example.com/", "http://localhost:8080/", "http://127.0.0.1/",
            "http://10.1.2.3/", "http://172.16.0.1/", "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data", "http://100.64.0.1/",
            "http://0.0.0.0/", "http://[::1]/", "http://[fe80::1]/", "http://[fd00::1]/", "http://[::ffff:127.0.0.1]/", "http://metadata.internal/",
            "https://shop.example.com:0/", "https://shop.example.com:70000/", "https://shop.example.com/#frag", "https://shop.example.com/a b",
            // Other ways to write a loopback or private address, and names that are not names.
            "http://2130706433/", "http://0x7f.1/", "http://127.1/", "http://0177.0.0.1/", "http://localhost./", "http://127.0.0.1./",
            "http://metadata.google.internal./", "http://[::127.0.0.1]/", "http://[64:ff9b::a00:1]/", "http://[64:ff9b:1::1]/",
            "http://[2002:a00:1::]/", "http://[2001::1]/", "http://[fec0::1]/", "http://[example.com]/", "http://[fe80::1%25eth0]/",
            "http://192.0.0.8/", "http://198.18.0.1/", "http://shop%2eexample.com/", "http://shop_example.com/",
        ] {
            #expect(throws: OrderError.self, "\(bad)") { try policy.check(bad) }
        }
        // An operator may allow private networks (a receiver on loopback in a test).
        #expect(try NotifyURLPolicy(allowPrivateNetworks: true).check("http://127.0.0.1:9/n").port == 9)
        // At send time, every resolved address is checked.
        #expect(!policy.allows(address: [10, 0, 0, 5]) && policy.allows(address: [203, 0, 113, 7]))
        // NAT64 (DNS64 on an IPv6-only network): judged by the IPv4 address inside.
        #expect(!policy.allows(address: [0, 0x64, 0xff, 0x9b] + [UInt8](repeating: 0, count: 8) + [10, 0, 0, 1]))
        #expect(policy.allows(address: [0, 0x64, 0xff, 0x9b] + [UInt8](repeating: 0, count: 8) + [203, 0, 113, 7]))
        #expect(try policy.check("https://shop.example.com./n").host == "shop.example.com")
        #expect(!policy.allows(address: [UInt8](repeating: 0, count: 15) + [1]))
    }
}
