import CellRouting
import OrderHTTP
import OrderModel

/// Where operator changes to the routing table made through a proxy go:
/// the control plane, whose new release then reaches every proxy. The
/// change is made on behalf of the operator token that asked for it.
/// A change made against `expectedVersion` is refused `409 version_conflict`
/// unless that routing version is still the current one.
public protocol RoutingChanges: Sendable {
    func blacklist(_ cell: CellID, _ entry: BlacklistEntry, expectedVersion: UInt64?, by token: OperatorToken) async throws -> RoutingTable
    func unblacklist(_ cell: CellID, reason: String?, expectedVersion: UInt64?, by token: OperatorToken) async throws -> RoutingTable
}
