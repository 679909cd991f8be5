import CellRouting
import OrderModel

/// The cells' notifiers reached through their cell clients: what the
/// control plane's operator API uses in either deployment.
public struct CellNotifierCalls: CellNotifierOperations {
    private let clients: any CellClientProvider

    public init(clients: any CellClientProvider) { self.clients = clients }

    public func notifierStatus(of cell: CellRoute, _ status: NotificationStatus?, after: String?, limit: Int) async throws -> NotifierStatusPage {
        try await client(cell).notifierStatus(status, after: after, limit: limit)
    }

    public func redeliverNotifications(in cell: CellRoute, _ eventIDs: [String]?, by operator: String) async throws -> Int {
        try await client(cell).redeliverNotifications(eventIDs, by: `operator`)
    }

    private func client(_ cell: CellRoute) throws(OrderError) -> any CellClient {
        guard let client = clients.client(for: cell) else { throw OrderError(.cellUnavailable, "cell \(cell.id) cannot be reached from here") }
        return client
    }
}
