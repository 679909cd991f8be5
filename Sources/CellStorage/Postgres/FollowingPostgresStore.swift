import CellRouting
import Logging
import OrderCellPlatform
import OrderModel
import ServiceLifecycle
import Synchronization

/// A cell's PostgreSQL storage that follows the routing table: when the
/// cell's primary or replicas change (a failover), it connects to the new
/// servers and switches every later call to them, without a restart.
///
/// A `Service`: ``run()`` runs the current store's connections and those of
/// every store it switches to; a store switched away from is closed once
/// the calls under way on it have had their time.
public final class FollowingPostgresStore: OrderStore, Service {
    private struct Current: Sendable {
        var primary: PostgresEndpoint
        var replicas: [PostgresEndpoint]
        var store: PostgresOrderStore
    }

    private let current: Mutex<Current>
    private let template: PostgresCellConfiguration
    private let applicationName: String
    private let logger: Logger
    /// What ``run()`` does with the stores: run the first and each one switched to, retire those switched from.
    private enum Lifecycle: Sendable {
        case start(PostgresOrderStore)
        case retire(PostgresOrderStore)
    }
    private let lifecycle = AsyncStream<Lifecycle>.makeStream()

    /// A store of the servers of `configuration`; nothing connects until ``run()``.
    /// - Parameter applicationName: what its sessions show in `pg_stat_activity`.
    public init(_ configuration: PostgresCellConfiguration, applicationName: String = "ordercell-cell", logger: Logger) {
        let store = PostgresOrderStore(configuration, applicationName: applicationName, logger: logger)
        self.applicationName = applicationName
        self.current = Mutex(Current(primary: configuration.primary, replicas: configuration.replicas, store: store))
        self.template = configuration
        self.logger = logger
        lifecycle.continuation.yield(.start(store))
    }

    /// Runs the stores' connections until a graceful shutdown or
    /// cancellation, and a store switched away from until it is retired.
    public func run() async {
        let (events, retirement) = (lifecycle.stream, template.callTimeout * 2)
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await event in events {
                    switch event {
                    case .start(let store):
                        group.addTask { await store.run() }
                    case .retire(let store):
                        // Calls already under way on the old servers finish or time out meanwhile.
                        group.addTask {
                            try? await Task.sleep(for: retirement)
                            store.close()
                        }
                    }
                }
            }
        }
    }

    /// Migrates the current primary's schema; needs ``run()`` running.
    public func migrate() async throws { try await store.migrate() }

    /// The primary calls go to now.
    public var primary: PostgresEndpoint { current.withLock { $0.primary } }

    /// The store calls go to now.
    public var store: PostgresOrderStore { current.withLock { $0.store } }

    /// Switches to new servers if they differ from the current ones, once
    /// the new primary answers. Returns whether it switched.
    @discardableResult
    public func follow(primary: PostgresEndpoint, replicas: [PostgresEndpoint]) async throws -> Bool {
        let unchanged = current.withLock { $0.primary == primary && $0.replicas == replicas }
        guard !unchanged else { return false }
        var configuration = template
        configuration.primary = primary
        configuration.replicas = replicas
        let store = PostgresOrderStore(configuration, applicationName: applicationName, logger: logger)
        lifecycle.continuation.yield(.start(store))
        do {
            // Never onto a standby: a release naming one is stale (Patroni has moved the leader since), and a
            // demoted server must not be written to even if it were to accept a session.
            guard try await !store.primaryIsInRecovery() else {
                throw StoreError("\(primary) is a standby (in recovery), not the cell's primary: not switching to it")
            }
            try await store.migrate()
        } catch {
            store.close()
            throw error
        }
        let old = current.withLock { current in
            defer { current = Current(primary: primary, replicas: replicas, store: store) }
            return current.store
        }
        lifecycle.continuation.yield(.retire(old))
        logger.notice("cell storage switched", metadata: ["primary": "\(primary)", "replicas": "\(replicas)"])
        return true
    }

    public func insert(_ order: Order) async throws -> StoreInsertOutcome { try await store.insert(order) }
    public func insertBatch(_ orders: [Order]) async throws -> [StoreInsertOutcome] { try await store.insertBatch(orders) }
    public var batchesInserts: Bool { true }
    public func order(_ id: OrderID, consistency: ReadConsistency) async throws -> Order? {
        try await store.order(id, consistency: consistency)
    }
    public func order(_ key: MerchantKey, consistency: ReadConsistency) async throws -> Order? {
        try await store.order(key, consistency: consistency)
    }
    public func apply(_ command: OrderCommand, to id: OrderID, now: Timestamp) async throws -> OrderStateMachine.Decision {
        try await store.apply(command, to: id, now: now)
    }
    public func refunds(of id: OrderID) async throws -> [Refund] { try await store.refunds(of: id) }
    public func events(of id: OrderID) async throws -> [OrderEvent] { try await store.events(of: id) }
    public func eventFeed(after position: EventFeedPosition, limit: Int) async throws -> [FeedEvent] {
        try await store.eventFeed(after: position, limit: limit)
    }
    public func purgeOrders(of merchantID: String, createdBefore cutoff: Timestamp, limit: Int) async throws -> Int {
        try await store.purgeOrders(of: merchantID, createdBefore: cutoff, limit: limit)
    }
    public func expiredOrders(at now: Timestamp, limit: Int) async throws -> [OrderID] {
        try await store.expiredOrders(at: now, limit: limit)
    }
    public func reserveSequenceSegment(size: Int64) async throws -> ClosedRange<Int64> {
        try await store.reserveSequenceSegment(size: size)
    }
    public func orderCount() async throws -> Int { try await store.orderCount() }
    public func unverifiedOrders(createdBefore cutoff: Timestamp, after: OrderListPosition?, limit: Int) async throws -> [Order] {
        try await store.unverifiedOrders(createdBefore: cutoff, after: after, limit: limit)
    }
    public func setKeyStatus(_ status: MerchantKeyStatus, of ids: [OrderID]) async throws { try await store.setKeyStatus(status, of: ids) }
    public func claimMerchantKeys(_ claims: [(key: MerchantKey, order: OrderID)], now: Timestamp) async throws -> [Result<MerchantKeyClaim, OrderError>] {
        try await store.claimMerchantKeys(claims, now: now)
    }
    public func updateMerchantKey<Answer: Sendable>(
        _ key: MerchantKey, _ decide: @escaping @Sendable (MerchantKeyEntry?) -> MerchantKeyIndex.Decision<Answer>
    ) async throws -> Answer {
        try await store.updateMerchantKey(key, decide)
    }
    public func bindMerchantKeys(_ requests: [MerchantKeyBindRequest], now: Timestamp) async throws -> [Result<MerchantKeyBinding, OrderError>] {
        try await store.bindMerchantKeys(requests, now: now)
    }
    public var batchesBinds: Bool { true }
    public func insertBound(_ creates: [BoundInsert], now: Timestamp) async throws -> [Result<BoundInsertOutcome, OrderError>] {
        try await store.insertBound(creates, now: now)
    }
    public func merchantKeyEntry(_ key: MerchantKey, consistency: ReadConsistency) async throws -> MerchantKeyEntry? {
        try await store.merchantKeyEntry(key, consistency: consistency)
    }
    public func movedMerchantKeys(updatedBefore cutoff: Timestamp, limit: Int) async throws -> [MerchantKeyEntry] {
        try await store.movedMerchantKeys(updatedBefore: cutoff, limit: limit)
    }
    public func setIndexSlots(_ slots: [Int], frozen: Bool) async throws { try await store.setIndexSlots(slots, frozen: frozen) }
    public func frozenIndexSlots() async throws -> Set<Int> { try await store.frozenIndexSlots() }
    public func frozenMerchantKeys(inSlots slots: Set<Int>, after: MerchantKey?, limit: Int) async throws -> MerchantKeyPage {
        try await store.frozenMerchantKeys(inSlots: slots, after: after, limit: limit)
    }
    public func importMerchantKeys(_ entries: [MerchantKeyEntry]) async throws { try await store.importMerchantKeys(entries) }
    public func deleteFrozenMerchantKeys(_ keys: [MerchantKey]) async throws -> Int { try await store.deleteFrozenMerchantKeys(keys) }
}
