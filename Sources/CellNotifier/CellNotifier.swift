import CellStorage
import Logging
import MerchantNotifications
import OrderHTTP
import OrderModel
import ServiceLifecycle
import Synchronization

/// One cell's notifier: takes the paid, refunded, closed and expired events
/// from the cell's feed into the cell's outbox of notifications, and sends
/// them to their merchants' endpoints on the retry schedule
/// (docs/events.md). It runs beside the cell service, never on the request
/// path: an order call does not wait for it, and a merchant's endpoint,
/// however slow, holds only its own attempts.
///
/// **Durable at every step.** The outbox and the notifier's feed cursor are
/// in the cell's storage (``NotificationStore``): taking a page of events
/// and moving the cursor is one transaction, and each attempt's outcome is
/// stored after it. A notifier killed anywhere, or a failover of the cell's
/// storage, loses nothing: its successor finds the outbox as it was and the
/// feed past the cursor. What it repeats (an attempt whose outcome was not
/// stored) the merchant sees twice, with the same event id.
///
/// **One per cell.** Every cell service runs a notifier; the one holding the
/// lease in the cell's storage works, the others wait to take over when it
/// stops renewing it.
public final class CellNotifier: Service, Sendable {
    public let cell: CellID
    private let store: any OrderStore & NotificationStore
    private let endpoints: @Sendable () -> [String: NotifyEndpoint]
    /// Whether the endpoints come from a routing release the control plane handed this process (not only a
    /// snapshot from disk): events are taken from the feed only then, so none is passed over for lack of an
    /// endpoint the snapshot was too old to have.
    private let endpointsAreCurrent: @Sendable () -> Bool
    private let sealer: CredentialSealer
    private let sender: NotificationSender
    private let configuration: NotifierConfiguration
    private let clock: @Sendable () -> Timestamp
    /// Who this notifier is in the lease: unique per process and cell.
    public let holder: String
    private let logger: Logger

    private struct State {
        /// Whether it held the lease at its last renewal.
        var leading = false
        /// Where it has taken the feed to (read from storage when it takes the lease).
        var cursor: EventFeedPosition?
        /// Attempts under way: event id → merchant.
        var inFlight: [String: String] = [:]
        /// Attempts that ended since the current round read the due notifications: that read may
        /// have seen them due still, before their outcome was stored.
        var endedThisRound: Set<String> = []
        /// Secrets opened, by merchant, with the sealed text they came from.
        var secrets: [String: (sealed: String, secret: String)] = [:]
        var lastPurge: Timestamp?
    }
    private let state = Mutex(State())

    public init(
        cell: CellID, store: any OrderStore & NotificationStore, endpoints: @escaping @Sendable () -> [String: NotifyEndpoint],
        endpointsAreCurrent: @escaping @Sendable () -> Bool = { true }, sealer: CredentialSealer, sender: NotificationSender,
        configuration: NotifierConfiguration = .init(), holder: String, clock: @escaping @Sendable () -> Timestamp, logger: Logger
    ) {
        self.cell = cell
        self.store = store
        self.endpoints = endpoints
        self.endpointsAreCurrent = endpointsAreCurrent
        self.sealer = sealer
        self.sender = sender
        self.configuration = configuration
        // Unique even where processes share a pid and a port (containers): two holders must never take each other for themselves.
        self.holder = "\(holder) #\(UInt32.random(in: 0...UInt32.max))"
        self.clock = clock
        var logger = logger
        logger[metadataKey: "cell"] = "\(cell)"
        logger[metadataKey: "component"] = "notifier"
        self.logger = logger
    }

    /// Whether this notifier held the cell's lease at its last look.
    public var isLeading: Bool { state.withLock { $0.leading } }

    /// Works until a graceful shutdown or cancellation, then gives the lease
    /// up so that another cell service's notifier takes over at once.
    /// Attempts under way are cut off; they are sent again by whoever works next.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                while !Task.isCancelled {
                    await self.step(&group)
                    try? await Task.sleep(for: self.configuration.pollInterval)
                }
            }
        }
        if isLeading {
            try? await store.releaseNotifierLease(holder)
            logger.info("notifier lease given up")
        }
    }

    /// One round: renew the lease; take new events from the feed; start the attempts that are due. Each part
    /// fails alone: a feed that cannot be read (a bad page, a primary that lost commits) holds no delivery up.
    func step(_ group: inout DiscardingTaskGroup) async {
        do {
            guard try await holdLease() else { return }
        } catch {
            if !(error is CancellationError) { logger.warning("notifier lease not renewed; trying again", metadata: ["error": "\(error)"]) }
            return
        }
        if endpointsAreCurrent() {
            do {
                try await takeFeed()
            } catch {
                // Read again from storage next round: after a failover the cell's storage may stand elsewhere.
                state.withLock { $0.cursor = nil }
                if !(error is CancellationError) { logger.warning("notifier could not take the feed; trying again", metadata: ["error": "\(error)"]) }
            }
        }
        do {
            try await startDueAttempts(&group)
            try await purgeIfDue()
        } catch {
            if !(error is CancellationError) { logger.warning("notifier could not start due attempts; trying again", metadata: ["error": "\(error)"]) }
        }
    }

    private func holdLease() async throws -> Bool {
        let held = try await store.holdNotifierLease(holder, now: clock(), for: configuration.leaseDuration)
        let changed = state.withLock { state -> Bool in
            defer { state.leading = held }
            // Taking it over: the cursor is read again, whatever another holder did meanwhile.
            if held != state.leading { state.cursor = nil }
            return held != state.leading
        }
        if changed { logger.notice(held ? "notifier took the cell's lease" : "notifier lost the cell's lease", metadata: ["holder": "\(holder)"]) }
        return held
    }

    /// Pages the feed takes at most per round: a long catch-up renews the lease and sends between its rounds.
    static let feedPagesPerRound = 4

    /// Takes the events from the cursor on into the outbox, a page per transaction, a few pages a round.
    private func takeFeed() async throws {
        var cursor: EventFeedPosition
        if let known = state.withLock({ $0.cursor }) {
            cursor = known
        } else {
            cursor = try await store.notificationCursor()
        }
        for _ in 0..<Self.feedPagesPerRound {
            let page = try await store.eventFeed(after: cursor, limit: configuration.feedPageSize)
            guard let last = page.last else { break }
            let registered = endpoints()
            var notifications: [StoredNotification] = []
            let now = clock()
            for event in page where NotificationBody.notifies(event.event.kind) && registered[event.merchantID] != nil {
                // The order as it stands now; an order that is gone (purged) is told by its event alone.
                let order = try await store.order(event.event.orderID, consistency: .strong)
                notifications.append(
                    StoredNotification(
                        merchantID: event.merchantID, orderID: event.event.orderID, kind: event.event.kind, body: NotificationBody.json(event, order: order),
                        createdAt: now, delivery: NotificationDelivery(eventID: event.id, createdAt: now)
                    )
                )
            }
            try await store.enqueueNotifications(notifications, advancingCursorTo: last.position)
            cursor = last.position
            state.withLock { $0.cursor = last.position }
            if page.count < configuration.feedPageSize { break }
        }
        state.withLock { $0.cursor = cursor }
    }

    /// Starts the due attempts there is room for: within the overall limit, and the per-merchant one.
    private func startDueAttempts(_ group: inout DiscardingTaskGroup) async throws {
        let room = state.withLock { state in
            // An attempt that ends from here on is remembered: the read below may find it due still.
            state.endedThisRound.removeAll()
            return configuration.maximumConcurrentDeliveries - state.inFlight.count
        }
        guard room > 0 else { return }
        // Merchants with every attempt they may have under way are left out of the read: the page is others'.
        let saturated = state.withLock { state in
            Dictionary(grouping: state.inFlight.values, by: { $0 }).filter { $0.value.count >= configuration.maximumConcurrentPerMerchant }.map(\.key)
        }
        let due = try await store.dueNotifications(at: clock(), limit: room, excludingMerchants: saturated)
        for notification in due {
            let started = state.withLock { state -> Bool in
                guard state.inFlight.count < configuration.maximumConcurrentDeliveries, state.inFlight[notification.eventID] == nil,
                    !state.endedThisRound.contains(notification.eventID)
                else { return false }
                let merchant = notification.merchantID
                guard state.inFlight.values.lazy.filter({ $0 == merchant }).count < configuration.maximumConcurrentPerMerchant else { return false }
                state.inFlight[notification.eventID] = merchant
                return true
            }
            guard started else { continue }
            group.addTask {
                await self.attempt(notification)
                // After its outcome is stored: a round that reads the due notifications later sees that outcome.
                self.state.withLock { state in
                    state.inFlight.removeValue(forKey: notification.eventID)
                    state.endedThisRound.insert(notification.eventID)
                }
            }
        }
    }

    /// One attempt, and its outcome stored.
    private func attempt(_ notification: StoredNotification) async {
        let outcome: NotificationDelivery.Outcome
        if let endpoint = endpoints()[notification.merchantID] {
            do {
                let secret = try openedSecret(endpoint)
                outcome = await sender.send(
                    notification.body, eventID: notification.eventID, to: endpoint, secret: secret, timestamp: clock().secondsSinceEpoch,
                    timeout: configuration.attemptTimeout
                )
            } catch {
                outcome = .failed("the notification secret cannot be opened: \(error)")
            }
        } else {
            outcome = .failed("merchant \(notification.merchantID) has no notify endpoint")
        }
        guard !Task.isCancelled else { return }
        var delivery = notification.delivery
        delivery.record(outcome, at: clock(), schedule: configuration.schedule)
        do {
            try await store.updateNotification(delivery, from: notification.delivery.state)
        } catch {
            // Left pending as it was: sent again, which the merchant deduplicates.
            logger.warning("notification outcome not stored", metadata: ["event_id": "\(notification.eventID)", "error": "\(error)"])
        }
        switch delivery.state {
        case .delivered(let attempts, _):
            logger.debug("notification delivered", metadata: ["event_id": "\(notification.eventID)", "attempts": "\(attempts)"])
        case .pending(let attempts, let due, let failure):
            logger.info(
                "notification attempt failed; retrying",
                metadata: ["event_id": "\(notification.eventID)", "merchant_id": "\(notification.merchantID)", "attempts": "\(attempts)", "due": "\(due)",
                           "failure": "\(failure ?? "")"]
            )
        case .dead(let attempts, _, let failure):
            logger.warning(
                "notification dead: the schedule ended without an acknowledgement",
                metadata: ["event_id": "\(notification.eventID)", "merchant_id": "\(notification.merchantID)", "attempts": "\(attempts)", "failure": "\(failure)"]
            )
        }
    }

    private func openedSecret(_ endpoint: NotifyEndpoint) throws(OrderError) -> String {
        if let cached = state.withLock({ $0.secrets[endpoint.merchantID] }), cached.sealed == endpoint.sealedSecret { return cached.secret }
        let secret = try sealer.open(endpoint.sealedSecret, keyID: NotifyEndpoint.sealingID(of: endpoint.merchantID))
        state.withLock { $0.secrets[endpoint.merchantID] = (endpoint.sealedSecret, secret) }
        return secret
    }

    /// Deletes delivered notifications past their retention, about once a minute.
    private func purgeIfDue() async throws {
        let now = clock()
        let due = state.withLock { state -> Bool in
            guard state.lastPurge.map({ now.millisecondsSinceEpoch - $0.millisecondsSinceEpoch >= 60_000 }) ?? true else { return false }
            state.lastPurge = now
            return true
        }
        guard due else { return }
        let cutoff = now.adding(milliseconds: -configuration.deliveredRetention.wholeMilliseconds)
        while try await store.purgeDeliveredNotifications(before: cutoff, limit: 1000) == 1000 {}
    }
}
