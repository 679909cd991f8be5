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
        /// Whether it held the lease at its last renewal, and when that was (this process's clock).
        var leading = false
        var renewedAt: ContinuousClock.Instant?
        /// Where it has taken the feed to (read from storage when it takes the lease), and when it last looked.
        var cursor: EventFeedPosition?
        var feedReadAt: ContinuousClock.Instant?
        /// Whether the last look found a full page: catching up, it looks again next round.
        var feedBehind = false
        /// Attempts under way: event id → merchant.
        var inFlight: [String: String] = [:]
        /// Attempts ended whose outcome is not stored yet (stored together, once a round): not started
        /// again meanwhile, though storage still has them due.
        var ended: [String: NotificationUpdate] = [:]
        var storedAt: ContinuousClock.Instant?
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

    /// Rounds come at least this far apart when there is work: each reads the due notifications, and the
    /// outcomes of ended attempts are stored with one commit at most every ``outcomeInterval``.
    static let busyRoundInterval = Duration.milliseconds(25)
    static let outcomeInterval = Duration.milliseconds(100)

    /// Works until a graceful shutdown or cancellation, then stores the outcomes it has and gives the lease
    /// up, so that another cell service's notifier takes over at once. Attempts under way are cut off;
    /// they are sent again by whoever works next.
    public func run() async throws {
        let wakeup = Wakeup()
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                while !Task.isCancelled {
                    let began = ContinuousClock.now
                    await self.step(&group, wakeup: wakeup)
                    // Idle, a round every poll interval; an attempt that ends wakes it sooner, but never
                    // sooner than the busy interval after the last round began.
                    let busy = self.state.withLock { !$0.inFlight.isEmpty || !$0.ended.isEmpty || $0.feedBehind }
                    await wakeup.wait(upTo: busy ? Self.outcomeInterval : self.configuration.pollInterval)
                    let spent = ContinuousClock.now - began
                    if spent < Self.busyRoundInterval { try? await Task.sleep(for: Self.busyRoundInterval - spent) }
                }
            }
        }
        // Out of reach of the cancellation that may have ended the loop: the outcomes in hand are stored (or
        // their notifications are sent again), and the lease is given up for the next notifier to take at once.
        await Task {
            try? await self.storeOutcomes(force: true)
            if self.isLeading {
                try? await self.store.releaseNotifierLease(self.holder)
                self.logger.info("notifier lease given up")
            }
        }.value
    }

    /// One round: renew the lease when due; store the outcomes of ended attempts; take new events from the
    /// feed; start the attempts that are due. Each part fails alone: a feed that cannot be read (a bad page,
    /// a primary that lost commits) holds up no delivery.
    func step(_ group: inout DiscardingTaskGroup, wakeup: Wakeup) async {
        do {
            try await storeOutcomes(force: false)
        } catch {
            if !(error is CancellationError) { logger.warning("notification outcomes not stored; trying again", metadata: ["error": "\(error)"]) }
        }
        do {
            guard try await holdLease() else { return }
        } catch {
            if !(error is CancellationError) { logger.warning("notifier lease not renewed; trying again", metadata: ["error": "\(error)"]) }
            return
        }
        if endpointsAreCurrent(), feedIsDue() {
            do {
                try await takeFeed()
            } catch {
                // Read again from storage next round: after a failover the cell's storage may stand elsewhere.
                state.withLock {
                    $0.cursor = nil
                    $0.feedBehind = false
                }
                if !(error is CancellationError) { logger.warning("notifier could not take the feed; trying again", metadata: ["error": "\(error)"]) }
            }
        }
        do {
            // Only under a lease with time left for the attempts it starts (taking the feed may have taken a while).
            guard try await holdLease() else { return }
            try await startDueAttempts(&group, wakeup: wakeup)
            try await purgeIfDue()
        } catch {
            if !(error is CancellationError) { logger.warning("notifier could not start due attempts; trying again", metadata: ["error": "\(error)"]) }
        }
    }

    /// The feed is read every poll interval, and every round while it is behind.
    private func feedIsDue() -> Bool {
        state.withLock { state in
            state.feedBehind || state.feedReadAt.map { ContinuousClock.now - $0 >= configuration.pollInterval } ?? true
        }
    }

    /// Stores the outcomes of ended attempts with one commit, once every ``outcomeInterval`` (every one when
    /// `force`); their notifications may be started again after.
    private func storeOutcomes(force: Bool) async throws {
        let updates = state.withLock { state -> [NotificationUpdate] in
            guard !state.ended.isEmpty, force || state.storedAt.map({ ContinuousClock.now - $0 >= Self.outcomeInterval }) ?? true else { return [] }
            return Array(state.ended.values)
        }
        guard !updates.isEmpty else { return }
        _ = try await store.updateNotifications(updates)
        state.withLock { state in
            for update in updates { state.ended.removeValue(forKey: update.delivery.eventID) }
            state.storedAt = .now
        }
    }

    /// Renews the lease a third of its duration after the last renewal (taking it when not held, every round).
    private func holdLease() async throws -> Bool {
        let fresh = state.withLock { state in
            state.leading && state.renewedAt.map { ContinuousClock.now - $0 < configuration.leaseDuration / 3 } ?? false
        }
        if fresh { return true }
        // The lease runs from before it was written: an answer that came late shortens it, never lengthens it.
        let asked = ContinuousClock.now
        let held: Bool
        do {
            held = try await store.holdNotifierLease(holder, now: clock(), for: configuration.leaseDuration)
        } catch {
            // Not renewed for a whole lease: another notifier may have worked meanwhile; start over when it comes back.
            state.withLock { state in
                if let renewed = state.renewedAt, ContinuousClock.now - renewed >= configuration.leaseDuration {
                    state.leading = false
                    state.renewedAt = nil
                    state.cursor = nil
                }
            }
            throw error
        }
        let changed = state.withLock { state -> Bool in
            defer {
                state.leading = held
                state.renewedAt = held ? asked : nil
            }
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
        state.withLock {
            $0.feedReadAt = .now
            $0.feedBehind = false
        }
        for round in 0..<Self.feedPagesPerRound {
            let page = try await store.eventFeed(after: cursor, limit: configuration.feedPageSize)
            guard let last = page.last else { break }
            let registered = endpoints()
            var notifications: [StoredNotification] = []
            let now = clock()
            for event in page where NotificationBody.notifies(event.event.kind) && registered[event.merchantID] != nil {
                notifications.append(
                    StoredNotification(
                        merchantID: event.merchantID, orderID: event.event.orderID, kind: event.event.kind, createdAt: now, delivery: NotificationDelivery(eventID: event.id, createdAt: now)
                    )
                )
            }
            try await store.enqueueNotifications(notifications, advancingCursorTo: last.position)
            cursor = last.position
            let full = page.count == configuration.feedPageSize
            state.withLock {
                $0.cursor = last.position
                $0.feedBehind = full && round == Self.feedPagesPerRound - 1
            }
            if !full { break }
        }
        state.withLock { $0.cursor = cursor }
    }

    /// Starts the due attempts there is room for: within the overall limit, and the per-merchant one.
    private func startDueAttempts(_ group: inout DiscardingTaskGroup, wakeup: Wakeup) async throws {
        let (room, busy, saturated) = state.withLock { state in
            let room = configuration.maximumConcurrentDeliveries - state.inFlight.count
            // Merchants with every attempt they may have under way are left out of the read: the page is others'.
            let saturated = Dictionary(grouping: state.inFlight.values, by: { $0 }).filter { $0.value.count >= configuration.maximumConcurrentPerMerchant }
            return (room, state.inFlight.count + state.ended.count, Array(saturated.keys))
        }
        guard room > 0 else { return }
        var excluded = saturated
        // A read whose page goes to merchants at their limit is read again without them (a few times a round): one
        // merchant's backlog of due notifications never keeps the others' out of the page.
        for _ in 0..<Self.dueReadsPerRound {
            // Those under way or ended unstored are due still in storage: read past them.
            let limit = room + busy
            let due = try await store.dueNotifications(at: clock(), limit: limit, excludingMerchants: excluded)
            let (started, full) = startAttempts(due, &group, wakeup: wakeup)
            let atLimit = state.withLock { state in
                Set(state.inFlight.values).filter { merchant in
                    state.inFlight.values.lazy.filter { $0 == merchant }.count >= configuration.maximumConcurrentPerMerchant
                }
            }
            excluded = Array(Set(excluded).union(atLimit))
            guard due.count == limit, !full, started < due.count else { return }
        }
    }

    /// Reads of the due notifications a round makes at most.
    static let dueReadsPerRound = 4

    /// Starts those of `due` there is room for; how many it started, and whether the overall limit is reached.
    private func startAttempts(_ due: [StoredNotification], _ group: inout DiscardingTaskGroup, wakeup: Wakeup) -> (started: Int, full: Bool) {
        var count = 0
        for notification in due {
            let started = state.withLock { state -> Bool in
                guard state.inFlight.count < configuration.maximumConcurrentDeliveries, state.inFlight[notification.eventID] == nil,
                    state.ended[notification.eventID] == nil
                else { return false }
                let merchant = notification.merchantID
                guard state.inFlight.values.lazy.filter({ $0 == merchant }).count < configuration.maximumConcurrentPerMerchant else { return false }
                state.inFlight[notification.eventID] = merchant
                return true
            }
            guard started else { continue }
            count += 1
            group.addTask {
                let update = await self.attempt(notification)
                self.state.withLock { state in
                    state.inFlight.removeValue(forKey: notification.eventID)
                    if let update { state.ended[notification.eventID] = update }
                }
                wakeup.signal()
            }
        }
        return (count, state.withLock { $0.inFlight.count >= configuration.maximumConcurrentDeliveries })
    }

    /// One attempt: its outcome, to be stored (nil when it was cut off).
    private func attempt(_ notification: StoredNotification) async -> NotificationUpdate? {
        let outcome: NotificationDelivery.Outcome
        if let endpoint = endpoints()[notification.merchantID] {
            do {
                let secret = try openedSecret(endpoint)
                // The event from the cell's events (the outbox keeps no copy of it), and the order as it stands now.
                let order = try await store.order(notification.orderID, consistency: .strong)
                let events = order == nil ? [] : try await store.events(of: notification.orderID)
                if let order, let event = events.first(where: { $0.sequence == notification.sequence }) {
                    outcome = await sender.send(
                        NotificationBody.json(eventID: notification.eventID, event: event, order: order), eventID: notification.eventID, to: endpoint,
                        secret: secret, timestamp: clock().secondsSinceEpoch, timeout: configuration.attemptTimeout
                    )
                } else {
                    outcome = .failed("event \(notification.eventID) is no longer in the cell (its order was purged)")
                }
            } catch let error as OrderError {
                outcome = .failed("the notification secret cannot be opened: \(error.detail)")
            } catch {
                // The order could not be read (a failover under way): tried again on the schedule.
                outcome = .failed("the order could not be read: \(error)")
            }
        } else {
            outcome = .failed("merchant \(notification.merchantID) has no notify endpoint")
        }
        // Cut off by a stop: not an outcome, the next notifier sends it again. An acknowledgement that came in
        // is one, and stored on the way out.
        guard !Task.isCancelled || outcome == .acknowledged else { return nil }
        var delivery = notification.delivery
        delivery.record(outcome, at: clock(), schedule: configuration.schedule)
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
        return NotificationUpdate(delivery: delivery, previous: notification.delivery.state)
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
        // One batch a round: a long purge (the first after a while) must not hold up sending or the lease.
        if try await store.purgeDeliveredNotifications(before: cutoff, limit: 1000) == 1000 {
            state.withLock { $0.lastPurge = nil }
        }
    }
}

/// Wakes the notifier's loop when an attempt ends, or after a time.
final class Wakeup: Sendable {
    private struct State {
        var signalled = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state.waiter = nil }
            if state.waiter == nil { state.signalled = true }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Returns at the first signal (one sent since the last wait counts), or after `timeout`.
    func wait(upTo timeout: Duration) async {
        let timer = Task {
            // A timer cancelled because a signal came first must not leave a signal of its own behind.
            do { try await Task.sleep(for: timeout) } catch { return }
            self.signal()
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.signalled {
                        state.signalled = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            // A graceful stop does not wait out the poll interval.
            self.signal()
        }
        timer.cancel()
    }
}
