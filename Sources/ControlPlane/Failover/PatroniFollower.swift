import CellRouting
import Logging
import OrderCellPlatform
import OrderModel
import ServiceLifecycle
import Synchronization

/// Keeps every cell's storage route on its Patroni leader: Patroni fails a
/// cell's primary over by itself (fenced by its leader lock in etcd); this
/// publishes the new primary and standbys as a routing release (author
/// `failover`), so proxies and cell services switch within the push.
///
/// It reads each cell's keys every `interval`. A cell with no primary
/// running (its leader's lease expired, the standby not promoted yet) keeps
/// its route: there is nothing better to point at. When etcd cannot be
/// read, nothing changes. Operator switchovers and failovers go through
/// ``switchover(_:candidate:author:)`` and ``failover(_:candidate:author:)``,
/// whose releases carry the operator's name.
public final class PatroniFollower: Service, Sendable {
    private let control: ControlPlane
    public let patroni: PatroniClient
    private let interval: Duration
    private let logger: Logger
    /// Cells an operator is switching over, and who: the release that follows is theirs.
    private let operatorActions = Mutex<[CellID: (author: String, action: String)]>([:])
    /// One follow pass at a time (the loop, or an operator's call waiting for its outcome).
    private let following = PublishQueue()

    public init(control: ControlPlane, patroni: PatroniClient, interval: Duration = .milliseconds(500), logger: Logger) {
        self.control = control
        self.patroni = patroni
        self.interval = interval
        self.logger = logger
    }

    public func run() async {
        await cancelWhenGracefulShutdown {
            var unreadable: Set<CellID> = []
            while !Task.isCancelled {
                unreadable = await self.followOnce(reportingUnreadable: unreadable)
                try? await Task.sleep(for: self.interval)
            }
        }
    }

    /// Reads every cell's Patroni keys and publishes what changed; returns
    /// the cells whose keys could not be read (logged when they first fail).
    @discardableResult
    func followOnce(reportingUnreadable before: Set<CellID> = []) async -> Set<CellID> {
        let pass = { () async throws(OrderError) -> Set<CellID> in
            var unreadable: Set<CellID> = []
            for route in self.control.routingTable.cells.values.sorted(by: { $0.id < $1.id }) where route.storage != nil {
                do {
                    try await self.follow(route.id, try await self.patroni.cell(route.id))
                } catch {
                    unreadable.insert(route.id)
                    if !before.contains(route.id) {
                        self.logger.warning("cannot read the cell's Patroni state; its storage route stays", metadata: ["cell": "\(route.id)", "error": "\(error)"])
                    }
                }
            }
            return unreadable
        }
        return (try? await following.run(pass)) ?? before
    }

    /// Publishes `state`'s storage for `cell` when it differs from the route's.
    private func follow(_ cell: CellID, _ state: PatroniCell) async throws {
        guard let route = control.routingTable.cells[cell]?.storage, let next = state.storage(following: route) else { return }
        let primary = state.primary
        var reason: String
        if next.primary != route.primary {
            reason = "cell \(cell): Patroni leader \(primary?.name ?? "?") at \(next.primary.host):\(next.primary.port)"
                + "\(primary?.timeline.map { ", timeline \($0)" } ?? ""), was \(route.primary.host):\(route.primary.port)"
        } else {
            reason = "cell \(cell): standbys now \(next.replicas.map { "\($0.host):\($0.port)" }.joined(separator: ", ")) (Patroni)"
        }
        var author = "failover"
        if let action = operatorActions.withLock({ $0[cell] }) {
            author = action.author
            reason = "\(action.action) requested by \(action.author); " + reason
        }
        _ = try await control.change(author: author, reason: reason) { table in
            try table.updatingCell(cell) { $0.storage = next }
        }
        logger.notice("cell storage follows Patroni", metadata: ["cell": "\(cell)", "author": "\(author)", "reason": "\(reason)"])
    }

    /// A planned switchover of `cell` (Patroni's: the leader hands over to
    /// the synchronous standby, no acknowledged commit lost), then the
    /// release that moves the cell's services, by `author`.
    public func switchover(_ cell: CellID, candidate: String?, author: String) async throws -> RoutingTable {
        try await operatorAction(cell, author: author, action: "switchover") {
            try await patroni.switchover(cell, candidate: candidate)
        }
    }

    /// A forced failover of `cell` to a standby (Patroni's), then the release, by `author`.
    public func failover(_ cell: CellID, candidate: String?, author: String) async throws -> RoutingTable {
        try await operatorAction(cell, author: author, action: "failover") {
            try await patroni.failover(cell, candidate: candidate)
        }
    }

    private func operatorAction(
        _ cell: CellID, author: String, action: String, _ ask: () async throws -> Void
    ) async throws -> RoutingTable {
        guard control.routingTable.cells[cell]?.storage != nil else {
            throw OrderError(.notFound, "cell \(cell) has no PostgreSQL storage in the routing table")
        }
        let before = try await patroni.cell(cell).primary?.name
        operatorActions.withLock { $0[cell] = (author, action) }
        defer { _ = operatorActions.withLock { $0.removeValue(forKey: cell) } }
        try await ask()
        // Patroni answers once the new leader holds the lock; the release follows once it runs as the primary.
        let giveUp = ContinuousClock.now.advanced(by: .seconds(30))
        while ContinuousClock.now < giveUp {
            let state = try await patroni.cell(cell)
            if let primary = state.primary, primary.name != before {
                await followOnce()
                if control.routingTable.cells[cell]?.storage?.primary.port == primary.port,
                    control.routingTable.cells[cell]?.storage?.primary.host == primary.host
                {
                    return control.routingTable
                }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw OrderError(.cellUnavailable, "the \(action) of cell \(cell) was asked, but no new primary ran within 30 s", retryAfterSeconds: 5)
    }
}
