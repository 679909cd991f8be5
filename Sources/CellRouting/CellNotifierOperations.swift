import OrderModel

/// What the control plane asks of the cells' notifiers for operators
/// (docs/events.md): implemented over the cell calls, in process or over
/// the cell protocol, so the control plane's API needs neither.
public protocol CellNotifierOperations: Sendable {
    /// `cell`'s notifier: its backlog and lag behind the feed, and up to `limit` notifications in `status` (none when nil) after `after`.
    func notifierStatus(of cell: CellRoute, _ status: NotificationStatus?, after: String?, limit: Int) async throws -> NotifierStatusPage
    /// Makes `cell`'s dead notifications due again (all of them when `eventIDs` is nil), naming the operator; how many.
    func redeliverNotifications(in cell: CellRoute, _ eventIDs: [String]?, by operator: String) async throws -> Int
}
