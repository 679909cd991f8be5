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
