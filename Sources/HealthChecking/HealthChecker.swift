import OrderCellPlatform
import CellRouting
import ControlPlane
import Logging
import OrderModel
import OrderProxy
import ServiceLifecycle
import Synchronization

/// Probes every active cell with synthetic orders through the real cell
/// path (the same cell clients the proxies use), judges them with
/// ``CellHealthTracker`` (k failures down, m successes up, growing backoff,
/// panic threshold) and publishes the verdicts into the routing as a
/// release of the control plane.
///
/// A probe is one order of ``ProbeMerchant`` created, paid and refunded in
/// full (a paid order cannot be closed; the refund closes its money flow),
/// all within ``probeTimeout``. Its `out_trade_no` is chosen so that its
/// merchant key falls in one of the cell's own index slots: the probe binds
/// and claims the key in the cell, so a cell whose index fails fails its
/// probe (a cell that holds no slot is probed without the index).
public final class HealthChecker: Service, Sendable {
    public let policy: HealthCheckPolicy
    public let probeTimeout: Duration
    private let control: ControlPlane
    private let clients: any CellClientProvider
    private let tracker: Mutex<CellHealthTracker>
    /// Whether the last round was in panic (logged when it changes, not every round).
    private let inPanic = Mutex(false)
    private let sequence = Atomic<UInt64>(0)
    private let clock: @Sendable () -> Timestamp
    /// The operator's slot moves: a probe keeps off the slots being moved (their index writes are refused on purpose).
    private let indexSlotMover: IndexSlotMover?
    private let logger: Logger

    public init(
        control: ControlPlane, clients: any CellClientProvider, policy: HealthCheckPolicy = .init(), probeTimeout: Duration = .seconds(2),
        indexSlotMover: IndexSlotMover? = nil, clock: @escaping @Sendable () -> Timestamp, logger: Logger
    ) {
        self.control = control
        self.indexSlotMover = indexSlotMover
        self.clients = clients
        self.policy = policy
        self.probeTimeout = probeTimeout
        let published = control.routingTable.health.mapValues(\.reason)
        self.tracker = Mutex(CellHealthTracker(policy: policy, down: published, now: clock()))
        self.clock = clock
        self.logger = logger
    }

    /// What one round saw and did.
    public struct Round: Sendable, Equatable {
        /// Cells probed, with the failure (nil: healthy).
        public var probes: [CellID: String?]
        public var verdict: HealthVerdict
        /// The routing version published, if the round changed the routing.
        public var published: UInt64?
    }

    public func run() async throws {
        let tick = Duration.milliseconds(min(policy.intervalMilliseconds, 250))
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.runRound()
                try await Task.sleep(for: tick)
            }
        }
    }

    /// Probes the cells that are due, records the outcomes, and publishes
    /// any change of verdict into the routing.
    @discardableResult
    public func runRound() async -> Round {
        let table = control.routingTable
        let active = table.sortedCells.filter { $0.state == .active }
        let now = clock()
        let due = tracker.withLock { $0.cellsDue(among: active.map(\.id), at: now) }
        var probes: [CellID: String?] = [:]
        let moving = indexSlotMover?.slotsBeingMoved ?? []
        await withTaskGroup(of: (CellID, String?, Int64).self) { group in
            for cell in due {
                guard let route = table.cells[cell] else { continue }
                // A cell whose every slot is being moved is probed without the index.
                let slots = Set(table.indexSlots.slots(of: cell)).subtracting(moving)
                group.addTask { await self.probe(route, slots: slots) }
            }
            for await (cell, failure, latency) in group {
                probes[cell] = failure
                let finished = clock()
                tracker.withLock { $0.record(cell, failure: failure, latencyMilliseconds: latency, at: finished) }
            }
        }
        let verdict = tracker.withLock { $0.verdict(over: active.map(\.id)) }
        return Round(probes: probes, verdict: verdict, published: await publish(verdict, at: clock()))
    }

    private func publish(_ verdict: HealthVerdict, at now: Timestamp) async -> UInt64? {
        let table = control.routingTable
        var down: [CellID: HealthMark] = [:]
        var up = Set(table.health.keys.filter { verdict.up.contains($0) })
        let panicChanged = inPanic.withLock { state in
            defer { state = verdict.panic }
            return state != verdict.panic
        }
        if verdict.panic {
            // So many cells look down that the checker's own view is the likelier fault: take none out.
            if panicChanged {
                logger.critical(
                    "health checker panic: too many cells look down; none is taken out",
                    metadata: ["down": "\(verdict.down.keys.sorted())", "panic_share": "\(policy.panicShare)"]
                )
            }
            up.formUnion(table.health.keys)
        } else {
            for (cell, reason) in verdict.down where table.health[cell] == nil {
                down[cell] = HealthMark(since: now, reason: reason)
            }
        }
        guard !down.isEmpty || !up.isEmpty else { return nil }
        var parts: [String] = []
        if !down.isEmpty { parts.append("down: cells \(down.keys.sorted().map(\.description).joined(separator: ", "))") }
        if !up.isEmpty { parts.append("up: cells \(up.sorted().map(\.description).joined(separator: ", "))") }
        do {
            let published = try await control.change(author: "health checker", reason: parts.joined(separator: "; ")) {
                try $0.settingHealth(down: down, up: up)
            }
            logger.warning("health verdict published", metadata: ["version": "\(published.version)", "change": "\(parts.joined(separator: "; "))"])
            return published.version
        } catch {
            logger.error("cannot publish the health verdict", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// One synthetic order through the cell: create, pay, refund in full.
    private func probe(_ route: CellRoute, slots: Set<Int>) async -> (CellID, String?, Int64) {
        let started = ContinuousClock.now
        func elapsed() -> Int64 { (ContinuousClock.now - started).wholeMilliseconds }
        guard let client = clients.client(for: route) else { return (route.id, "no client for the cell", 0) }
        let number = sequence.add(1, ordering: .relaxed).newValue
        let indexed = !slots.isEmpty
        var chosen = "probe-\(route.id)-\(clock().millisecondsSinceEpoch)-\(number)"
        if indexed {
            // A few tries on average: the cell holds about 1/n of the slots.
            var suffix = 0
            while !slots.contains(MerchantKey(merchantID: ProbeMerchant.id, outTradeNo: "\(chosen)-\(suffix)").slot(of: IndexSlots.count)) {
                suffix += 1
            }
            chosen += "-\(suffix)"
        }
        let reference = chosen
        let key = MerchantKey(merchantID: ProbeMerchant.id, outTradeNo: reference)
        do {
            let request = try CreateOrderRequest(
                merchantID: ProbeMerchant.id, outTradeNo: reference, amount: 1, currency: "CNY", description: "health probe",
                expireSeconds: 60
            )
            // One deadline for the whole probe: a hanging cell fails its probe in `probeTimeout`.
            try await withDeadline(probeTimeout) {
                if indexed {
                    let binding = try await client.bindMerchantKey(key, candidate: route.id, attempt: number)
                    guard binding.owner == route.id else { throw ProbeFailure("the index bound probe key \(key) to cell \(binding.owner)") }
                }
                let id = try await client.create(request, keyStatus: indexed ? .reserved : .unindexed).order.id
                if indexed {
                    let claim = try await client.claimMerchantKey(key, for: id)
                    guard claim == .holds else { throw ProbeFailure("the index answered \(claim) to the claim of probe key \(key)") }
                }
                // Claimed above (or, in a cell holding no slot, a probe order nobody else can hold).
                _ = try await client.apply(.pay(paymentID: reference, amount: 1, keyClaimed: true), to: id)
                _ = try await client.apply(.refund(refundID: reference, amount: 1, reason: "health probe"), to: id)
            }
            return (route.id, nil, elapsed())
        } catch {
            return (route.id, "\(error)", elapsed())
        }
    }
}

/// A probe's call answered, but not as a healthy cell answers.
struct ProbeFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
