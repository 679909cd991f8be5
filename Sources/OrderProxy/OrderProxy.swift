import OrderCellPlatform
import CellRouting
import Logging
import OrderModel
import Synchronization

/// Settings of a proxy.
public struct ProxyConfiguration: Sendable {
    public var retry: OrderRetryPolicy
    public var outliers: OutlierPolicy
    /// Length of the load window used for hotspot balancing.
    public var loadWindowMilliseconds: Int64
    /// Deadline of one call to a cell.
    public var cellCallTimeout: Duration
    /// How long a create that the key's slot cell refused (the slot is being
    /// moved, or the cell follows another release) waits for a newer release
    /// before it starts once more: a slot move re-points within about this
    /// long, and a create that gives up makes an unindexed order.
    public var slotRefusalWait: Duration

    public init(
        retry: OrderRetryPolicy = OrderRetryPolicy(), outliers: OutlierPolicy = OutlierPolicy(),
        loadWindowMilliseconds: Int64 = 1000, cellCallTimeout: Duration = .seconds(2), slotRefusalWait: Duration = .seconds(1)
    ) {
        self.retry = retry
        self.outliers = outliers
        self.loadWindowMilliseconds = loadWindowMilliseconds
        self.cellCallTimeout = cellCallTimeout
        self.slotRefusalWait = slotRefusalWait
    }
}

/// The proxy: places new orders in cells (late binding with order retry)
/// and routes every other call to the cell named in the order id.
///
/// Holds no state that matters: a routing table snapshot and what it has
/// observed of the cells (load, outliers). Any proxy can serve any request.
public final class OrderProxy: Sendable {
    public let configuration: ProxyConfiguration
    private let routing: Mutex<RoutingTable>
    private let placement: Mutex<PlacementState>
    private let rateLimiter: Mutex<CreateRateLimiter>
    private let clients: any CellClientProvider
    private let clock: @Sendable () -> Timestamp
    private let logger: Logger

    public init(
        routingTable: RoutingTable, clients: any CellClientProvider, configuration: ProxyConfiguration = .init(),
        clock: @escaping @Sendable () -> Timestamp, logger: Logger = Logger(label: "ordercell.proxy")
    ) {
        self.configuration = configuration
        self.routing = Mutex(routingTable)
        self.placement = Mutex(
            PlacementState(
                loadWindowMilliseconds: configuration.loadWindowMilliseconds, outlierPolicy: configuration.outliers,
                now: clock()
            )
        )
        self.rateLimiter = Mutex(CreateRateLimiter(limits: routingTable.policy.rateLimits, now: clock()))
        self.clients = clients
        self.clock = clock
        self.logger = logger
    }

    // MARK: - Routing table

    /// The routing table this proxy routes by.
    public var routingTable: RoutingTable { routing.withLock { $0 } }

    /// Replaces the routing table with a newer version (or a release of a
    /// new epoch); older versions are ignored.
    @discardableResult
    public func install(_ table: RoutingTable) -> Bool {
        routing.withLock { current in
            guard table.supersedes(current) else { return false }
            current = table
            return true
        }
    }

    /// The cell clients this proxy calls, for another component that calls cells the same way (a health checker).
    public var clientProvider: any CellClientProvider { clients }

    /// Cells this proxy's passive outlier detection has ejected, with when each ejection lapses.
    public var ejectedCells: [CellID: Timestamp] {
        let now = clock()
        return placement.withLock { $0.outliers.ejections(at: now) }
    }

    /// How this proxy sees the service instances of `cell` (empty in process, or when the cell is not in its table).
    public func serviceInstances(of cell: CellID) -> [CellServiceInstanceStatus] {
        guard let route = routing.withLock({ $0.cells[cell] }), let client = clients.client(for: route) else { return [] }
        return client.serviceInstances()
    }

    // MARK: - Create (late binding + order retry)

    /// Places a new order: admits it under the rate limits, chooses the
    /// partition (merchant rule, canary share, spill-over) and a cell of it,
    /// binds the merchant key to a cell in its index slot, and creates the
    /// order in the key's cell; on a cell failure moves its own reservation
    /// to another cell, up to the retry limit (``MerchantKeyCreate``,
    /// docs/merchant-keys.md).
    ///
    /// A repeated create — through any proxy, after any routing change —
    /// is sent to the cell its key is bound to, where it meets the first
    /// order: the same order (`created == false`), `out_trade_no_conflict`
    /// for a different request, or `503` while that cell cannot answer.
    public func create(_ request: CreateOrderRequest) async throws(OrderError) -> CreateOrderResult {
        let key = MerchantKey(merchantID: request.merchantID, outTradeNo: request.outTradeNo)
        var waitedForRouting = false
        afterRoutingChange: while true {
            let now = clock()
            let (wanted, partition, cells, routes, policy, slotCell, backfill, version) = routing.withLock { table in
                let wanted = table.partition(forMerchant: request.merchantID, outTradeNo: request.outTradeNo)
                let placed = table.placement(in: wanted, at: now)
                return (
                    wanted, placed.partition, placed.cells, table.cells, table.policy, table.indexCell(for: key), table.indexBackfill,
                    table.version
                )
            }
            // Admitted once: a create started again after a routing change is the same create.
            if !waitedForRouting { try admit(request, policy: policy, at: now) }
            let refused = policy.degradation.refuseCreatesIn
            if !refused.isEmpty, let partition = refused.first(where: { $0 == wanted || $0 == partition }) {
                throw OrderError(.degraded, "new orders in partition \(partition) are switched off by an operator", retryAfterSeconds: 30)
            }
            let candidates = placement.withLock { $0.candidates(from: cells, at: now) }
            let retryPolicy = policy.maximumCreateAttempts.map { OrderRetryPolicy(maximumAttempts: $0) } ?? configuration.retry
            // The cell of the key's slot goes first when it is as good a choice as any: there the create binds in the same call.
            var walk = MerchantKeyCreate(
                key: key, retry: OrderRetry(candidates: candidates, policy: retryPolicy, preferring: slotCell),
                policy: policy.indexSlotPolicy(of: partition), backfill: backfill, slotCell: slotCell
            )
            var random = SplitMix64(seedingFrom: request.merchantID, request.outTradeNo)
            // Names this create call in the index: only it may move its own reservation.
            let attempt = UInt64.random(in: 1...UInt64.max)
            var action = walk.start(using: &random)
            while true {
                switch action {
                case .search:
                    do {
                        // A key the index knows needs no search: the bind goes where its entry says.
                        let known = try? await index(slotCell, routes) { try await $0.merchantKeyEntry(key, consistency: .strong) }
                        let found = known == nil ? try await earlierOrder(key, routes)?.id.cell : nil
                        action = walk.searched(found: found, using: &random)
                    } catch {
                        action = walk.searchFailed(error.detail)
                    }
                case .bind(let candidate):
                    do {
                        action = walk.indexAnswered(
                            try await index(slotCell, routes) { try await $0.bindMerchantKey(key, candidate: candidate, attempt: attempt) }
                        )
                    } catch {
                        // The slot's cell refused the bind (the slot is being moved, or the cell follows another release):
                        // it made nothing, so start once more, as a refused bound create does (below).
                        if error.code == .indexUnavailable, !waitedForRouting {
                            waitedForRouting = true
                            _ = await routingNewer(than: version, within: configuration.slotRefusalWait)
                            continue afterRoutingChange
                        }
                        action = walk.indexFailed(error.detail)
                    }
                case .move(let from, let to):
                    do {
                        action = walk.indexAnswered(
                            try await index(slotCell, routes) { try await $0.moveMerchantKey(key, from: from, to: to, attempt: attempt) }
                        )
                    } catch {
                        action = walk.indexFailed(error.detail)
                    }
                case .createBound(let cell):
                    guard let route = routes[cell], route.state.servesExistingOrders, let client = clients.client(for: route) else {
                        action = walk.boundFailed("cell \(cell) is not in this proxy's routing table", .cellNotReached, using: &random)
                        continue
                    }
                    do {
                        switch try await callTellingWhetherRun(cell, client, { try await client.createBound(request, attempt: attempt) }) {
                        case .order(let result):
                            walk.created()
                            return result
                        case .boundElsewhere(let binding):
                            action = walk.boundElsewhere(binding)
                        }
                    } catch {
                        switch error.error.code {
                        case .cellUnavailable:
                            action = walk.boundFailed(error.error.detail, error.mayHaveRun ? .cellMayHaveCreated : .cellNotReached, using: &random)
                        case .indexUnavailable:
                            // The slot is being moved, or the cell and this proxy follow different releases: both end
                            // within the push. It made nothing, so start once more — by the next release if it comes
                            // within `slotRefusalWait`, else by this one, which the cell may have caught up with — rather than make
                            // an unindexed order beside the key's own.
                            if !waitedForRouting {
                                waitedForRouting = true
                                _ = await routingNewer(than: version, within: configuration.slotRefusalWait)
                                continue afterRoutingChange
                            }
                            action = walk.boundFailed(error.error.detail, .slotRefused, using: &random)
                        default:
                            walk.created()
                            throw error.error
                        }
                    }
                case .create(let cell, let keyStatus):
                    guard let route = routes[cell], route.state.servesExistingOrders, let client = clients.client(for: route) else {
                        action = walk.createFailed("cell \(cell) is not in this proxy's routing table", using: &random)
                        continue
                    }
                    do {
                        let result = try await call(cell, client) { try await client.create(request, keyStatus: keyStatus) }
                        walk.created()
                        return result
                    } catch {
                        guard error.code == .cellUnavailable else {
                            walk.created()
                            throw error
                        }
                        action = walk.createFailed(error.detail, using: &random)
                    }
                case .fail(let error):
                    if error.code != .noCellAvailable || walk.retry.attempts > 0 {
                        logger.warning(
                            "create failed", metadata: ["key": "\(key)", "cells": "\(walk.retry.failedCells)", "error": "\(error)"]
                        )
                    }
                    guard error.code == .noCellAvailable, walk.retry.attempts == 0 else { throw error }
                    let spilled = partition == wanted ? "" : " (partition \(wanted) had none and spills to it)"
                    throw OrderError(.noCellAvailable, "partition \(partition) has no cell that can take new orders\(spilled)")
                }
            }
        }
    }

    /// Waits until this proxy routes by a release newer than `version`,
    /// at most `limit`: whether it does.
    private func routingNewer(than version: UInt64, within limit: Duration) async -> Bool {
        let giveUp = ContinuousClock.now.advanced(by: limit)
        while ContinuousClock.now < giveUp {
            if routing.withLock({ $0.version }) != version { return true }
            do { try await Task.sleep(for: .milliseconds(20)) } catch { return false }
        }
        return routing.withLock { $0.version } != version
    }

    /// The key's order made before the index existed, asking every cell
    /// that serves orders (an index backfill): nil when none has one. Where
    /// an earlier release let a key be made twice, a paid order wins over an
    /// unpaid one, then the earliest. Throws when a cell cannot answer: its
    /// order could be the key's.
    private func earlierOrder(_ key: MerchantKey, _ routes: [CellID: CellRoute]) async throws(OrderError) -> Order? {
        var asked: [(CellID, any CellClient)] = []
        for route in routes.values where route.state.servesExistingOrders {
            guard let client = clients.client(for: route) else {
                throw OrderError(.cellUnavailable, "this proxy has no client for cell \(route.id)", retryAfterSeconds: 5)
            }
            asked.append((route.id, client))
        }
        let answers = await withTaskGroup(of: Result<Order?, OrderError>.self) { group in
            for (cell, client) in asked {
                group.addTask {
                    do throws(OrderError) {
                        return .success(try await self.call(cell, client) { try await client.order(key, consistency: .strong) })
                    } catch {
                        return error.code == .orderNotFound ? .success(nil) : .failure(error)
                    }
                }
            }
            var answers: [Result<Order?, OrderError>] = []
            for await answer in group { answers.append(answer) }
            return answers
        }
        var found: [Order] = []
        for answer in answers {
            switch answer {
            case .success(let order): if let order { found.append(order) }
            case .failure(let error): throw error
            }
        }
        return MerchantKeyIndex.earlierOrderToKeep(found)
    }

    /// A call to the cell holding a key's index slot; an index refusal or
    /// failure is thrown as it is (`cell_unavailable` when the cell failed).
    private func index<T: Sendable>(
        _ slotCell: CellID?, _ routes: [CellID: CellRoute], _ operation: @escaping @Sendable (any CellClient) async throws -> T
    ) async throws(OrderError) -> T {
        guard let slotCell, let route = routes[slotCell], let client = clients.client(for: route) else {
            throw OrderError(.indexUnavailable, "the routing table maps no cell to this key's index slot")
        }
        return try await call(slotCell, client) { try await operation(client) }
    }

    // MARK: - Lookup by the merchant's number

    /// The order a merchant created with `out_trade_no`, in whichever cell:
    /// the key's index slot names the cell, the cell finds the order.
    public func order(_ key: MerchantKey, consistency: ReadConsistency) async throws(OrderError) -> Order {
        if consistency == .eventual, degradation.refuseEventualReads {
            throw OrderError(.degraded, "eventual reads are switched off by an operator; read with consistency=strong", retryAfterSeconds: 30)
        }
        let (slotCell, routes) = routing.withLock { ($0.indexCell(for: key), $0.cells) }
        let entry: MerchantKeyEntry?
        do {
            entry = try await index(slotCell, routes) { try await $0.merchantKeyEntry(key, consistency: consistency) }
        } catch where error.code == .cellUnavailable {
            throw OrderError(.indexUnavailable, "the merchant-key index cannot be reached for out_trade_no \(key.outTradeNo): \(error.detail)", retryAfterSeconds: 5)
        }
        guard let entry else { throw OrderError(.orderNotFound, "merchant \(key.merchantID) has no order with out_trade_no \(key.outTradeNo)") }
        guard let route = routes[entry.owner], route.state.servesExistingOrders, let client = clients.client(for: route) else {
            throw OrderError(.orderNotFound, "no order for out_trade_no \(key.outTradeNo): cell \(entry.owner) is not in the routing table")
        }
        do {
            return try await call(entry.owner, client) { try await client.order(key, consistency: consistency) }
        } catch where error.code == .orderNotFound {
            throw OrderError(.orderNotFound, "merchant \(key.merchantID) has no order with out_trade_no \(key.outTradeNo)")
        }
    }

    /// Applies the create rate limits of the current release.
    private func admit(_ request: CreateOrderRequest, policy: TrafficPolicy, at now: Timestamp) throws(OrderError) {
        guard !policy.rateLimits.isUnlimited else { return }
        let decision = rateLimiter.withLock { limiter in
            limiter.reconfigure(policy.rateLimits, now: now)
            return limiter.admit(merchant: request.merchantID, at: now)
        }
        guard case .refused(let scope, let milliseconds) = decision else { return }
        let seconds = Int(max(1, min(milliseconds, 3_600_000) / 1000 + 1))
        switch scope {
        case .global:
            throw OrderError(.rateLimited, "this proxy takes at most \(Self.rate(policy.rateLimits.globalCreatesPerSecond)) creates per second", retryAfterSeconds: seconds)
        case .merchant(let merchant):
            throw OrderError(
                .rateLimited, "merchant \(merchant) may create at most \(Self.rate(policy.rateLimits.merchantLimit(merchant))) orders per second per proxy",
                retryAfterSeconds: seconds
            )
        }
    }

    private static func rate(_ value: Double?) -> String {
        guard let value else { return "unlimited" }
        return value == value.rounded() ? String(Int(value)) : String(value)
    }

    /// The degradation switches of the current release.
    private var degradation: DegradationSwitches { routing.withLock { $0.policy.degradation } }

    // MARK: - Calls routed by order id

    public func order(_ id: OrderID, consistency: ReadConsistency) async throws(OrderError) -> Order {
        if consistency == .eventual, degradation.refuseEventualReads {
            throw OrderError(.degraded, "eventual reads are switched off by an operator; read with consistency=strong", retryAfterSeconds: 30)
        }
        let client = try route(id)
        return try await call(id.cell, client) { try await client.order(id, consistency: consistency) }
    }

    /// Applies `command` to order `id`; `merchant` (nil: any): the caller acts for that merchant, and
    /// another merchant's order is `order_not_found` (the cell checks it).
    public func apply(_ command: OrderCommand, to id: OrderID, ownedBy merchant: String? = nil) async throws(OrderError) -> OrderCommandResult {
        if case .refund = command, degradation.refuseRefunds {
            throw OrderError(.degraded, "refunds are switched off by an operator; try again later", retryAfterSeconds: 60)
        }
        let client = try route(id)
        if case .pay(let paymentID, let amount, _) = command {
            return try await pay(id, paymentID: paymentID, amount: amount, client: client)
        }
        return try await call(id.cell, client) { try await client.apply(command, to: id, ownedBy: merchant) }
    }

    /// Pays an order only if it holds its merchant key: an order not yet
    /// verified claims its key in the index first (docs/merchant-keys.md),
    /// and a rival that loses answers `duplicate_order` naming the holder.
    private func pay(_ id: OrderID, paymentID: String, amount: Int64, client: any CellClient) async throws(OrderError) -> OrderCommandResult {
        // Most orders are verified by the reconciler seconds after their create: the pay goes
        // straight to the cell, one call. Only an order the cell finds unclaimed costs a claim.
        let unclaimed = OrderCommand.pay(paymentID: paymentID, amount: amount)
        do {
            return try await call(id.cell, client) { try await client.apply(unclaimed, to: id) }
        } catch where error.code == .keyUnclaimed {
            // The key never changes: a replica's copy of the order is as good as the primary's for it.
            let order = try await call(id.cell, client) { try await client.order(id, consistency: .eventual) }
            let (backfill, routes) = routing.withLock { ($0.indexBackfill, $0.cells) }
            if backfill, order.keyStatus == .unindexed {
                // Made before the index, perhaps twice by an earlier release: the order it would have let be
                // paid first gets the key first, whichever of them is paid now.
                if let keep = try await earlierOrder(order.merchantKey, routes), keep.id != id {
                    let slotCell = routing.withLock { $0.indexCell(for: order.merchantKey) }
                    _ = try await index(slotCell, routes) { try await $0.claimMerchantKey(order.merchantKey, for: keep.id) }
                }
            }
            try await claim(order.merchantKey, for: id)
            let claimed = OrderCommand.pay(paymentID: paymentID, amount: amount, keyClaimed: true)
            return try await call(id.cell, client) { try await client.apply(claimed, to: id) }
        }
    }

    /// Claims `key` for order `id` in its index slot; a rival answers `duplicate_order`, an unreachable slot or a
    /// reservation for another cell's create not yet settled `index_unavailable`.
    private func claim(_ key: MerchantKey, for id: OrderID) async throws(OrderError) {
        let (slotCell, routes) = routing.withLock { ($0.indexCell(for: key), $0.cells) }
        let claim: MerchantKeyClaim
        do {
            claim = try await index(slotCell, routes) { try await $0.claimMerchantKey(key, for: id) }
        } catch where error.code == .cellUnavailable || error.code == .indexUnavailable {
            throw OrderError(
                .indexUnavailable,
                "order \(id) cannot be paid before its out_trade_no is confirmed in the merchant-key index, which cannot be reached: \(error.detail)",
                retryAfterSeconds: 5
            )
        }
        switch claim {
        case .holds:
            return
        case .heldBy(let holder):
            throw OrderError(.duplicateOrder, "out_trade_no \(key.outTradeNo) is held by order \(holder); order \(id) cannot be paid")
        case .reservedFor(let owner):
            // Not final: the create holding the reservation may yet move it to this order's cell (or make an
            // order in cell `owner`, and then this one is a duplicate). The index cannot confirm the key now.
            throw OrderError(
                .indexUnavailable,
                "out_trade_no \(key.outTradeNo) is reserved for a create in cell \(owner) that has not finished; order \(id) can be paid once the merchant-key index settles it",
                retryAfterSeconds: 5
            )
        }
    }

    public func refunds(of id: OrderID, ownedBy merchant: String? = nil) async throws(OrderError) -> [Refund] {
        let client = try route(id)
        return try await call(id.cell, client) { try await client.refunds(of: id, ownedBy: merchant) }
    }

    public func events(of id: OrderID, ownedBy merchant: String? = nil) async throws(OrderError) -> [OrderEvent] {
        let client = try route(id)
        return try await call(id.cell, client) { try await client.events(of: id, ownedBy: merchant) }
    }

    /// The client of the cell named in the order id.
    private func route(_ id: OrderID) throws(OrderError) -> any CellClient {
        let cell = id.cell
        let route = routing.withLock { $0.cells[cell] }
        guard let route, route.state.servesExistingOrders, let client = clients.client(for: route) else {
            throw OrderError(.orderNotFound, "no order \(id): cell \(cell) is not in the routing table")
        }
        return client
    }

    /// Calls a cell with a deadline, records the outcome for hotspot
    /// balancing and outlier detection, and turns every failure of the
    /// cell itself into `cell_unavailable`.
    private func call<T: Sendable>(
        _ cell: CellID, _ client: any CellClient, _ operation: @escaping @Sendable () async throws -> T
    ) async throws(OrderError) -> T {
        do {
            return try await callTellingWhetherRun(cell, client, operation)
        } catch {
            throw error.error
        }
    }

    /// A failed cell call: what the caller is told, and whether the cell may
    /// have run it (``CellCallFailure``).
    private struct FailedCellCall: Error {
        var error: OrderError
        var mayHaveRun: Bool
    }

    /// ``call(_:_:_:)``, saying on a failure whether the cell may have run the call.
    private func callTellingWhetherRun<T: Sendable>(
        _ cell: CellID, _ client: any CellClient, _ operation: @escaping @Sendable () async throws -> T
    ) async throws(FailedCellCall) -> T {
        do {
            let result = client.enforcesOwnDeadline ? try await operation() : try await withDeadline(configuration.cellCallTimeout, operation)
            let now = clock()
            placement.withLock { $0.succeeded(cell, at: now) }
            return result
        } catch let error as OrderError {
            let now = clock()
            placement.withLock { $0.succeeded(cell, at: now) }
            throw FailedCellCall(error: error, mayHaveRun: true)
        } catch {
            let now = clock()
            let ejected = placement.withLock { $0.failed(cell, at: now) }
            if ejected {
                logger.warning("cell ejected by outlier detection", metadata: ["cell": "\(cell)", "error": "\(error)"])
            }
            throw FailedCellCall(error: OrderError(.cellUnavailable, "cell \(cell) is unavailable: \(error)"), mayHaveRun: error.cellMayHaveRunTheCall)
        }
    }
}
