import Logging
import OrderModel
import Synchronization

/// A cell's PostgreSQL storage that follows the routing table: when the
/// cell's primary or replicas change (a failover), it connects to the new
/// servers and switches every later call to them, without a restart.
public final class FollowingPostgresStore: OrderStore {
    private struct Current: Sendable {
        var primary: PostgresEndpoint
        var replicas: [PostgresEndpoint]
        var store: PostgresOrderStore
    }

    private let current: Mutex<Current>
    private let template: PostgresCellConfiguration
    private let logger: Logger

    /// Connects to the servers of `configuration`.
    public init(_ configuration: PostgresCellConfiguration, logger: Logger) async throws {
        let store = try await PostgresOrderStore.connect(configuration, logger: logger)
        self.current = Mutex(Current(primary: configuration.primary, replicas: configuration.replicas, store: store))
        self.template = configuration
        self.logger = logger
    }

    /// The primary calls go to now.
    public var primary: PostgresEndpoint { current.withLock { $0.primary } }

    /// The store calls go to now.
    public var store: PostgresOrderStore { current.withLock { $0.store } }

    /// Switches to new servers if they differ from the current ones.
    /// Returns whether it switched.
    @discardableResult
    public func follow(primary: PostgresEndpoint, replicas: [PostgresEndpoint]) async throws -> Bool {
        let unchanged = current.withLock { $0.primary == primary && $0.replicas == replicas }
        guard !unchanged else { return false }
        var configuration = template
        configuration.primary = primary
        configuration.replicas = replicas
        let store = try await PostgresOrderStore.connect(configuration, logger: logger)
        let old = current.withLock { current -> PostgresOrderStore in
            let old = current.store
            current = Current(primary: primary, replicas: replicas, store: store)
            return old
        }
        logger.notice("cell storage switched", metadata: ["primary": "\(primary)", "replicas": "\(replicas)"])
        // Calls already under way on the old servers finish or time out on their own.
        Task {
            try? await Task.sleep(for: template.callTimeout * 2)
            old.close()
        }
        return true
    }

    public func insert(_ order: Order) async throws -> StoreInsertOutcome { try await store.insert(order) }
    public func insertBatch(_ orders: [Order]) async throws -> [StoreInsertOutcome] { try await store.insertBatch(orders) }
    public var batchesInserts: Bool { true }
    public func order(_ id: OrderID, consistency: ReadConsistency) async throws -> Order? {
        try await store.order(id, consistency: consistency)
    }
    public func order(merchantID: String, outTradeNo: String) async throws -> Order? {
        try await store.order(merchantID: merchantID, outTradeNo: outTradeNo)
    }
    public func apply(_ command: OrderCommand, to id: OrderID, now: Timestamp) async throws -> OrderStateMachine.Decision {
        try await store.apply(command, to: id, now: now)
    }
    public func refunds(of id: OrderID) async throws -> [Refund] { try await store.refunds(of: id) }
    public func events(of id: OrderID) async throws -> [OrderEvent] { try await store.events(of: id) }
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
}
