import CellRouting
import OrderModel

/// Where operator changes to the routing table are made: the proxy's own
/// table when embedded, the control plane in a cluster (whose new release
/// then reaches every proxy).
public protocol RoutingChanges: Sendable {
    func blacklist(_ cell: CellID, _ entry: BlacklistEntry) async throws -> RoutingTable
    func unblacklist(_ cell: CellID) async throws -> RoutingTable
}

/// Changes the proxy's own routing table (embedded deployment).
public struct LocalRoutingChanges: RoutingChanges {
    public let proxy: OrderProxy

    public init(proxy: OrderProxy) { self.proxy = proxy }

    public func blacklist(_ cell: CellID, _ entry: BlacklistEntry) async throws -> RoutingTable {
        try proxy.updateRoutingTable { try $0.blacklisting(cell, entry) }
    }

    public func unblacklist(_ cell: CellID) async throws -> RoutingTable {
        try proxy.updateRoutingTable { try $0.unblacklisting(cell) }
    }
}
