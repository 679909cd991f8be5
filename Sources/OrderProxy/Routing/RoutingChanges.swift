import CellRouting
import OrderHTTP
import OrderModel

/// Where operator changes to the routing table made through a proxy go:
/// the control plane, whose new release then reaches every proxy. The
/// change is made on behalf of the operator token that asked for it.
public protocol RoutingChanges: Sendable {
    func blacklist(_ cell: CellID, _ entry: BlacklistEntry, by token: OperatorToken) async throws -> RoutingTable
    func unblacklist(_ cell: CellID, by token: OperatorToken) async throws -> RoutingTable
}

/// Changes the proxy's own routing table, without a control plane (tests of the proxy alone).
public struct LocalRoutingChanges: RoutingChanges {
    public let proxy: OrderProxy

    public init(proxy: OrderProxy) { self.proxy = proxy }

    public func blacklist(_ cell: CellID, _ entry: BlacklistEntry, by token: OperatorToken) async throws -> RoutingTable {
        try proxy.updateRoutingTable { try $0.blacklisting(cell, entry) }
    }

    public func unblacklist(_ cell: CellID, by token: OperatorToken) async throws -> RoutingTable {
        try proxy.updateRoutingTable { try $0.unblacklisting(cell) }
    }
}
