import CellRouting
import Logging
import OrderModel
import ServiceLifecycle
import Synchronization

/// Settles what the create path leaves open in the merchant-key index
/// (docs/merchant-keys.md), through the cells' own calls:
///
/// - **Moved keys**: a create whose attempt in a cell failed moved its
///   reservation on, and that attempt may have committed after all. Once
///   the entry has been still for ``grace``, the reconciler looks for the
///   key's order in the owner and in every cell left behind, claims the key
///   for the owner's order (or, when the owner has none, for the earliest
///   order left behind), and closes every other as a duplicate.
/// - **Unverified orders**: every new order, once its create is over
///   (``MerchantKeyStatus/reserved``), and those created while their slot
///   could not be reached (``MerchantKeyStatus/unindexed``). The reconciler
///   claims each one's key: the order is verified — so that its pay needs
///   no call to its key's slot, and a failing cell holding slots does not
///   hold up the pays of other cells' orders — or, when another order holds
///   the key, closed as a duplicate. A key reserved for another cell is not
///   final (the reservation may be moving to this order's cell): the order
///   waits, unpayable, for a later round. A pay that comes first claims the key itself.
///
/// - **Index backfill**: while the routing table says orders made before the
///   index may lack entries, a round that saw every cell's unverified orders
///   from the oldest, and left none of them unverified, ends the backfill
///   (``onBackfillDone``): every order older than the grace holds its key
///   or is closed as a duplicate, and orders made before the index are all
///   older than that.
///
/// Every step is idempotent and conditional on what it read (entries by
/// revision), so any number of reconcilers may run; one runs beside the
/// health checker. A cell that does not answer is skipped until the next round.
public final class MerchantKeyReconciler: Service, Sendable {
    /// What one round did.
    public struct Round: Sendable, Equatable {
        public var verified = 0
        public var settled = 0
        public var closedDuplicates = 0
        /// Unverified orders whose key is reserved for another cell's create: looked at again next round.
        public var waiting = 0
        public var failures: [String] = []
        /// Some cell had a full page of work: more is waiting.
        public var moreWaiting = false
        /// Some cell's list of unverified orders goes on past this round's page (next round takes the next page).
        public var advanced = false
        /// Every cell answered, and each one's unverified orders older than the grace were all in this round's
        /// page (read from the oldest, not full), and none of them was left unverified.
        public var complete = true
        public init() {}

        public mutating func add(_ other: Round) {
            verified += other.verified
            settled += other.settled
            closedDuplicates += other.closedDuplicates
            waiting += other.waiting
            failures += other.failures
            moreWaiting = moreWaiting || other.moreWaiting
            advanced = advanced || other.advanced
            complete = complete && other.complete
        }
    }

    public let grace: Duration
    public let interval: Duration
    /// The pause between rounds while a backlog remains (never longer than ``interval``).
    public var backlogPause: Duration { min(.milliseconds(100), interval) }
    private let routing: @Sendable () -> RoutingTable
    private let clients: any CellClientProvider
    private let clock: @Sendable () -> Timestamp
    private let logger: Logger
    /// Per cell, where its unverified orders go on next round: past a full
    /// page, so that orders that must wait do not hold back newer ones; back
    /// to the oldest once a page is not full.
    private let positions = Mutex<(byCell: [CellID: OrderListPosition], rounds: Int)>(([:], 0))
    /// Called after a complete round while the routing table has an index backfill.
    private let onBackfillDone: (@Sendable () async throws -> Void)?

    /// - Parameters:
    ///   - grace: how long an entry or order is left to its create's own calls
    ///     (the settling is safe at any time; it only spares work the create is still doing).
    ///   - routing: the current routing table (the control plane's).
    public init(
        routing: @escaping @Sendable () -> RoutingTable, clients: any CellClientProvider, grace: Duration = .seconds(5),
        interval: Duration = .seconds(5), clock: @escaping @Sendable () -> Timestamp, logger: Logger,
        onBackfillDone: (@Sendable () async throws -> Void)? = nil
    ) {
        self.onBackfillDone = onBackfillDone
        self.routing = routing
        self.clients = clients
        self.grace = grace
        self.interval = interval
        self.clock = clock
        self.logger = logger
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let round = await self.runRound()
                if round.settled + round.verified + round.closedDuplicates > 0 || !round.failures.isEmpty {
                    self.logger.notice(
                        "merchant keys reconciled",
                        metadata: [
                            "verified": "\(round.verified)", "settled": "\(round.settled)", "closed_duplicates": "\(round.closedDuplicates)",
                            "failures": "\(round.failures.prefix(3))",
                        ]
                    )
                }
                // A backlog (new orders come faster than a page a round) is worked off at once;
                // a round that neither changed anything nor moved on to a next page sleeps.
                let progressed = round.verified + round.settled + round.closedDuplicates > 0 || round.advanced
                // A backlog still leaves the cells a breath between pages: the reconciler is background work.
                try await Task.sleep(for: round.moreWaiting && progressed ? self.backlogPause : self.interval)
            }
        }
    }

    /// One pass over every cell, the cells side by side (a cell that does not answer holds up only its own page).
    @discardableResult
    public func runRound(limit: Int = 200) async -> Round {
        let table = routing()
        // Now and then from the oldest again, even under a backlog that keeps every page full: an order that
        // committed late, with a creation time before where a list stands, is not left behind for long.
        positions.withLock { positions in
            positions.rounds += 1
            if positions.rounds % 20 == 0 { positions.byCell = [:] }
        }
        let cutoff = clock().adding(milliseconds: -grace.wholeMilliseconds)
        var total = await withTaskGroup(of: Round.self) { group in
            var total = Round()
            for route in table.sortedCells where route.state.servesExistingOrders {
                guard let client = clients.client(for: route) else {
                    total.complete = false
                    continue
                }
                group.addTask { await self.reconcile(route.id, client, table: table, cutoff: cutoff, limit: limit) }
            }
            for await round in group { total.add(round) }
            return total
        }
        total.complete = total.complete && total.failures.isEmpty && total.waiting == 0
        if table.indexBackfill, total.complete, let onBackfillDone {
            do {
                try await onBackfillDone()
                logger.notice("merchant-key index backfill done: every order made before the index holds its key")
            } catch {
                total.failures.append("ending the index backfill: \(error)")
            }
        }
        return total
    }

    /// One page of one cell's moved keys and unverified orders.
    private func reconcile(_ cell: CellID, _ client: any CellClient, table: RoutingTable, cutoff: Timestamp, limit: Int) async -> Round {
        var round = Round()
        do {
            let moved = try await client.movedMerchantKeys(updatedBefore: cutoff, limit: limit)
            round.moreWaiting = moved.count == limit
            round.complete = moved.count < limit
            for entry in moved { await settle(entry, slot: client, table: table, into: &round) }
        } catch {
            round.failures.append("cell \(cell) moved keys: \(error)")
        }
        do {
            let after = positions.withLock { $0.byCell[cell] }
            let unverified = try await client.unverifiedOrders(createdBefore: cutoff, after: after, limit: limit)
            let full = unverified.count == limit
            positions.withLock { $0.byCell[cell] = full ? unverified.last.map(OrderListPosition.init(after:)) : nil }
            round.moreWaiting = round.moreWaiting || full || after != nil
            round.advanced = round.advanced || full
            round.complete = round.complete && after == nil && !full
            await verify(unverified, in: client, table: table, into: &round)
        } catch {
            round.failures.append("cell \(cell) unverified orders: \(error)")
        }
        return round
    }

    /// A page of one cell's unverified orders: their claims go to each slot's
    /// cell in one transaction, and the winners are marked verified in one
    /// more — two writes a page, not two an order.
    private func verify(_ orders: [Order], in cell: any CellClient, table: RoutingTable, into round: inout Round) async {
        var bySlot: [CellID: [Order]] = [:]
        for order in orders {
            guard let slotCell = table.indexCell(for: order.merchantKey) else {
                round.complete = false
                continue
            }
            bySlot[slotCell, default: []].append(order)
        }
        var verified: [OrderID] = []
        for (slotCell, orders) in bySlot.sorted(by: { $0.key < $1.key }) {
            guard let slot = client(slotCell, table) else {
                round.complete = false
                continue
            }
            do {
                // During a backfill, the key of an order made before the index goes to the order the earlier
                // release would have let be paid first (a paid one, else the earliest): claimed for it first.
                if table.indexBackfill {
                    for order in orders where order.keyStatus == .unindexed {
                        if let preferred = try await earlierOrder(order.merchantKey, table: table), preferred.id != order.id {
                            _ = try await slot.claimMerchantKey(order.merchantKey, for: preferred.id)
                        }
                    }
                }
                let claims = try await slot.claimMerchantKeys(orders.map { (key: $0.merchantKey, order: $0.id) })
                for (order, answer) in zip(orders, claims) {
                    do {
                        let claim = try answer.get()
                        if claim == .holds {
                            verified.append(order.id)
                        } else if try await resolve(order, claim, slot: slot, table: table, into: &round) {
                            verified.append(order.id)
                        }
                    } catch {
                        round.failures.append("order \(order.id): \(error)")
                    }
                }
            } catch {
                round.failures.append("claims in slot cell \(slotCell): \(error)")
            }
        }
        guard !verified.isEmpty else { return }
        do {
            try await cell.setKeyStatus(.verified, of: verified)
            round.verified += verified.count
        } catch {
            round.failures.append("marking \(verified.count) orders verified: \(error)")
        }
    }

    /// A moved key: find its orders, claim for one, close the others.
    private func settle(_ entry: MerchantKeyEntry, slot: any CellClient, table: RoutingTable, into round: inout Round) async {
        do {
            let ownerOrder = try await order(entry.key, in: entry.owner, table: table)
            var leftBehind: [OrderID] = []
            for cell in entry.abandoned where cell != entry.owner {
                if let order = try await order(entry.key, in: cell, table: table) { leftBehind.append(order.id) }
            }
            let (settled, rivals) = MerchantKeyIndex.settle(entry, ownerOrder: ownerOrder?.id, abandonedOrders: leftBehind, now: clock())
            guard try await slot.settleMerchantKey(settled, ifRevision: entry.revision) else { return }
            round.settled += 1
            for rival in rivals { try await closeDuplicate(rival, holder: settled.holder, table: table, into: &round) }
            if let holder = settled.holder, let client = client(holder.cell, table) {
                try await client.setKeyStatus(.verified, of: [holder])
            }
        } catch {
            round.failures.append("key \(entry.key): \(error)")
        }
    }

    /// A claim that did not win: returns whether the order holds its key after all (a takeover).
    private func resolve(
        _ order: Order, _ answer: MerchantKeyClaim, slot: any CellClient, table: RoutingTable, into round: inout Round
    ) async throws -> Bool {
        let key = order.merchantKey
        switch answer {
        case .holds:
            return true
        case .heldBy(let holder):
            // A claimed key never changes holder: this order is a rival for good.
            try await closeDuplicate(order.id, holder: holder, table: table, into: &round)
            return false
        case .reservedFor(let owner):
            if try await self.order(key, in: owner, table: table) == nil,
                let entry = try await slot.merchantKeyEntry(key, consistency: .strong), entry.holder == nil, entry.owner == owner
            {
                // The reservation's own cell has no order (its create never ran, or failed everywhere): the order that exists takes the key.
                let (settled, _) = MerchantKeyIndex.settle(entry, ownerOrder: nil, abandonedOrders: [order.id], now: clock())
                if try await slot.settleMerchantKey(settled, ifRevision: entry.revision) { return true }
            }
            // Not final: the reservation may be moving to this order's own cell (an order
            // retry's move still in flight), where this order would hold the key. It is left
            // unverified — it cannot be paid meanwhile — until the owner's order claims the key
            // (then `heldBy`) or a later round finds the reservation its own.
            round.waiting += 1
            return false
        }
    }

    /// The key's order an earlier release made, as every cell has it: a paid one first, else the earliest.
    private func earlierOrder(_ key: MerchantKey, table: RoutingTable) async throws -> Order? {
        var found: [Order] = []
        for route in table.sortedCells where route.state.servesExistingOrders {
            if let order = try await order(key, in: route.id, table: table) { found.append(order) }
        }
        return MerchantKeyIndex.earlierOrderToKeep(found)
    }

    private func closeDuplicate(_ rival: OrderID, holder: OrderID?, table: RoutingTable, into round: inout Round) async throws {
        guard let client = client(rival.cell, table) else { return }
        let result: OrderCommandResult
        do {
            result = try await client.apply(.closeDuplicate(holder: holder), to: rival)
        } catch let refusal as OrderError where refusal.code == .invalidState {
            // Paid already: only an earlier release could have let that happen (two orders of one key, both
            // paid before the index existed). It keeps its payment; its key status says what it is.
            let order = try await client.order(rival, consistency: .strong)
            guard order.keyStatus != .verified, order.paidAt != nil else { throw refusal }
            try await client.setKeyStatus(.duplicate, of: [rival])
            logger.error(
                "a paid order does not hold its out_trade_no: two orders of one key were paid before the merchant-key index",
                metadata: ["order": "\(rival)", "holder": "\(holder.map(\.description) ?? "-")"]
            )
            return
        }
        try await client.setKeyStatus(.duplicate, of: [rival])
        if result.changed {
            round.closedDuplicates += 1
            logger.warning("duplicate order closed", metadata: ["order": "\(rival)", "holder": "\(holder.map(\.description) ?? "-")"])
        }
    }

    /// The cell's order for `key`, nil when it has none; throws when the cell cannot answer
    /// (or this reconciler cannot reach it: "no order" must never be guessed).
    private func order(_ key: MerchantKey, in cell: CellID, table: RoutingTable) async throws -> Order? {
        guard let client = client(cell, table) else { throw ReconcilerFailure("no client for cell \(cell)") }
        do {
            return try await client.order(key, consistency: .strong)
        } catch let error as OrderError where error.code == .orderNotFound {
            return nil
        }
    }

    private func client(_ cell: CellID, _ table: RoutingTable) -> (any CellClient)? {
        guard let route = table.cells[cell], route.state.servesExistingOrders else { return nil }
        return clients.client(for: route)
    }
}

/// A step the reconciler cannot take this round.
struct ReconcilerFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
