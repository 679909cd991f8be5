import Foundation
import MerchantNotifications
import OrderModel
import Testing

@testable import CellStorage

/// The outbox of merchant notifications, against every engine.
@Suite("Notification store", .postgresServers)
struct NotificationStoreSuite {
    static let now = OrderStoreSuite.now
    static let schedule = NotificationSchedule(delays: [.seconds(15)], repeatDelay: .seconds(60), maximumAttempts: 3)

    static func notification(_ sequence: Int64, merchant: String = "m1", at: Timestamp = now) throws -> StoredNotification {
        let order = try OrderID(cell: CellID(1)!, createdAt: now, sequence: sequence)
        return StoredNotification(
            merchantID: merchant, orderID: order, kind: .paid, createdAt: at,
            delivery: NotificationDelivery(eventID: "\(order)-2", createdAt: at)
        )
    }

    private func withNotificationStore(
        _ kind: StoreKind, _ body: (_ store: any NotificationStore, _ reopen: @escaping @Sendable () async throws -> any NotificationStore) async throws -> Void
    ) async throws {
        try await kind.withStore { store, reopen in
            let outbox = try #require(store as? any NotificationStore)
            try await body(outbox, { try #require(try await reopen() as? any NotificationStore) })
        }
    }

    @Test("enqueued notifications and the cursor move in one step, survive a restart, and a repeat changes nothing", arguments: StoreKind.allCases)
    func enqueueIsIdempotentAndDurable(kind: StoreKind) async throws {
        try await withNotificationStore(kind) { store, reopen in
            #expect(try await store.notificationCursor() == .start)
            let (one, two) = (try Self.notification(1), try Self.notification(2, merchant: "m2"))
            let cursor = EventFeedPosition(transaction: 900, event: 7)
            try await store.enqueueNotifications([one, two], advancingCursorTo: cursor)
            // The feed handed the same events again (a crash before the cursor was seen): nothing doubles, nothing resets.
            var delivered = one.delivery
            delivered.record(.acknowledged, at: Self.now.adding(seconds: 1), schedule: Self.schedule)
            #expect(try await store.updateNotification(delivered, from: one.delivery.state))
            try await store.enqueueNotifications([one, two], advancingCursorTo: EventFeedPosition(transaction: 900, event: 6))
            let reopened = try await reopen()
            #expect(try await reopened.notificationCursor() == cursor, "the cursor never moves back")
            #expect(try await reopened.notification(one.eventID)?.delivery == delivered)
            #expect(try await reopened.notification(two.eventID) == two)
            #expect(try await reopened.dueNotifications(at: Self.now, limit: 10) == [two])
        }
    }

    @Test("due notifications come longest-due first; a failure waits its delay, the last one ends dead", arguments: StoreKind.allCases)
    func deliveryStepsAreStored(kind: StoreKind) async throws {
        try await withNotificationStore(kind) { store, _ in
            let early = try Self.notification(1, at: Self.now)
            let late = try Self.notification(2, at: Self.now.adding(seconds: 1))
            try await store.enqueueNotifications([late, early], advancingCursorTo: EventFeedPosition(transaction: 1, event: 1))
            #expect(try await store.dueNotifications(at: Self.now, limit: 10).map(\.eventID) == [early.eventID])
            #expect(try await store.dueNotifications(at: Self.now.adding(seconds: 1), limit: 10).map(\.eventID) == [early.eventID, late.eventID])
            var delivery = early.delivery
            var stale = delivery
            for attempt in 0..<3 {
                let at = Self.now.adding(seconds: Int64(attempt * 100))
                let previous = delivery.state
                stale = delivery
                delivery.record(.failed("HTTP 500"), at: at, schedule: Self.schedule)
                #expect(try await store.updateNotification(delivery, from: previous))
                if attempt == 0 {
                    #expect(try await store.dueNotifications(at: at.adding(seconds: 14), limit: 10).map(\.eventID) == [late.eventID])
                    #expect(try await store.dueNotifications(at: at.adding(seconds: 15), limit: 10).count == 2)
                }
            }
            #expect(try await store.notification(early.eventID)?.delivery.state == .dead(attempts: 3, at: Self.now.adding(seconds: 200), lastFailure: "HTTP 500"))
            #expect(try await store.notifications(.dead, after: nil, limit: 10).map(\.eventID) == [early.eventID])
            let backlog = try await store.notificationBacklog(at: Self.now.adding(seconds: 5))
            #expect(backlog.pending == 1 && backlog.due == 1 && backlog.dead == 1 && backlog.oldestPendingSince == late.createdAt)
            // A stale step (another notifier's, from an older state) changes nothing.
            let staleFrom = stale.state
            stale.record(.acknowledged, at: Self.now.adding(seconds: 300), schedule: Self.schedule)
            #expect(try await store.updateNotification(stale, from: staleFrom) == false)
            // Nor does an attempt begun before an operator's redelivery, though both start from no attempts.
            #expect(try await store.redeliverDeadNotifications([early.eventID], now: Self.now.adding(seconds: 400)) == 1)
            var beforeRedelivery = early.delivery
            beforeRedelivery.record(.acknowledged, at: Self.now.adding(seconds: 401), schedule: Self.schedule)
            #expect(try await store.updateNotification(beforeRedelivery, from: early.delivery.state) == false)
            #expect(try await store.notification(early.eventID)?.delivery.state == .pending(attempts: 0, due: Self.now.adding(seconds: 400), lastFailure: "HTTP 500"))
            // A merchant left out of the read (its attempts all under way) leaves the page to the others.
            #expect(try await store.dueNotifications(at: Self.now.adding(seconds: 500), limit: 10, excludingMerchants: ["m1"]).isEmpty)
            #expect(try await store.dueNotifications(at: Self.now.adding(seconds: 500), limit: 10, excludingMerchants: ["m2"]).count == 2)

        }
    }

    @Test("an operator's redelivery makes dead notifications due at once with their schedule anew", arguments: StoreKind.allCases)
    func redeliveryOfDeadNotifications(kind: StoreKind) async throws {
        try await withNotificationStore(kind) { store, _ in
            let notifications = try (1...3).map { try Self.notification($0) }
            try await store.enqueueNotifications(notifications, advancingCursorTo: EventFeedPosition(transaction: 1, event: 3))
            for notification in notifications {
                var delivery = notification.delivery
                for _ in 0..<3 { delivery.record(.failed("timeout"), at: Self.now, schedule: Self.schedule) }
                try await store.updateNotification(delivery, from: notification.delivery.state)
            }
            let later = Self.now.adding(seconds: 3600)
            #expect(try await store.redeliverDeadNotifications([notifications[0].eventID, "no-such-event"], now: later) == 1)
            #expect(try await store.redeliverDeadNotifications([notifications[0].eventID], now: later) == 0, "pending already")
            #expect(try await store.notification(notifications[0].eventID)?.delivery.state == .pending(attempts: 0, due: later, lastFailure: "timeout"))
            #expect(try await store.redeliverDeadNotifications(nil, now: later) == 2)
            #expect(try await store.dueNotifications(at: later, limit: 10).count == 3)
            #expect(try await store.notifications(.dead, after: nil, limit: 10).isEmpty)
        }
    }

    @Test("one notifier holds the lease until it lapses or is given up", arguments: StoreKind.allCases)
    func leaseIsExclusive(kind: StoreKind) async throws {
        try await withNotificationStore(kind) { store, _ in
            #expect(try await store.holdNotifierLease("a", now: Self.now, for: .seconds(10)))
            #expect(try await store.holdNotifierLease("b", now: Self.now.adding(seconds: 5), for: .seconds(10)) == false)
            #expect(try await store.holdNotifierLease("a", now: Self.now.adding(seconds: 5), for: .seconds(10)), "renewed")
            #expect(try await store.holdNotifierLease("b", now: Self.now.adding(seconds: 14), for: .seconds(10)) == false)
            #expect(try await store.holdNotifierLease("b", now: Self.now.adding(seconds: 15), for: .seconds(10)), "lapsed")
            try await store.releaseNotifierLease("a")
            #expect(try await store.notificationBacklog(at: Self.now).leaseHolder == "b", "only the holder gives it up")
            try await store.releaseNotifierLease("b")
            #expect(try await store.holdNotifierLease("a", now: Self.now.adding(seconds: 16), for: .seconds(10)))
        }
    }

    @Test("delivered notifications are purged after their retention; pending and dead ones stay", arguments: StoreKind.allCases)
    func purgeKeepsWhatIsOpen(kind: StoreKind) async throws {
        try await withNotificationStore(kind) { store, _ in
            let notifications = try (1...3).map { try Self.notification($0) }
            try await store.enqueueNotifications(notifications, advancingCursorTo: EventFeedPosition(transaction: 1, event: 3))
            var delivered = notifications[0].delivery
            delivered.record(.acknowledged, at: Self.now, schedule: Self.schedule)
            try await store.updateNotification(delivered, from: notifications[0].delivery.state)
            var dead = notifications[1].delivery
            for _ in 0..<3 { dead.record(.failed("refused"), at: Self.now, schedule: Self.schedule) }
            try await store.updateNotification(dead, from: notifications[1].delivery.state)
            #expect(try await store.purgeDeliveredNotifications(before: Self.now, limit: 10) == 0)
            #expect(try await store.purgeDeliveredNotifications(before: Self.now.adding(seconds: 1), limit: 10) == 1)
            #expect(try await store.notification(notifications[0].eventID) == nil)
            #expect(try await store.notification(notifications[1].eventID) != nil)
            #expect(try await store.notification(notifications[2].eventID) != nil)
        }
    }
}
