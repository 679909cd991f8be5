import CellRouting
import OrderModel

/// Gives the proxy a client for a cell as the routing table describes it.
public protocol CellClientProvider: Sendable {
    /// The client of `route`'s cell, or `nil` when this proxy cannot reach it.
    func client(for route: CellRoute) -> (any CellClient)?
}

/// A fixed set of clients by cell id (the embedded deployment).
public struct FixedCellClients: CellClientProvider {
    public let clients: [CellID: any CellClient]

    public init(_ clients: [CellID: any CellClient]) { self.clients = clients }

    public func client(for route: CellRoute) -> (any CellClient)? { clients[route.id] }
}
