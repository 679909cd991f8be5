import CellNotifier
import CellService
import CellStorage
import Foundation
import Logging
import OrderHTTP
import OrderModel
import ServiceLifecycle
import Synchronization

/// A notifier for every embedded cell, those added to the routing later
/// included: each works over its cell's SQLite file.
final class EmbeddedNotifiers: Service, Sendable {
    private let cells: EmbeddedCells
    private let endpoints: @Sendable () -> [String: NotifyEndpoint]
    private let sealer: CredentialSealer
    private let configuration: NotifierConfiguration
    private let clock: @Sendable () -> Timestamp
    private let logger: Logger
    private let running = Mutex<[CellID: CellNotifier]>([:])

    init(
        cells: EmbeddedCells, endpoints: @escaping @Sendable () -> [String: NotifyEndpoint], sealer: CredentialSealer,
        configuration: NotifierConfiguration, clock: @escaping @Sendable () -> Timestamp, logger: Logger
    ) {
        self.cells = cells
        self.endpoints = endpoints
        self.sealer = sealer
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
    }

    /// The notifiers by cell.
    var notifiers: [CellID: CellNotifier] { running.withLock { $0 } }

    func run() async throws {
        // Made here, not at init: a client that never ran must still be shut down, and a system opened
        // without running its services (a tool, a test) would not.
        let sender = NotificationSender()
        // The notifiers hear the graceful shutdown themselves (they store what they have and give their leases
        // up); only the look for new cells stops here.
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                for (cell, service) in self.cells.services.sorted(by: { $0.key < $1.key }) where self.running.withLock({ $0[cell] == nil }) {
                    guard let store = service.store as? any OrderStore & NotificationStore else { continue }
                    let notifier = CellNotifier(
                        cell: cell, store: store, endpoints: self.endpoints, sealer: self.sealer, sender: sender,
                        configuration: self.configuration, holder: "ordercell dev pid \(getpid())", clock: self.clock, logger: self.logger
                    )
                    self.running.withLock { $0[cell] = notifier }
                    group.addTask { try? await notifier.run() }
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        await sender.shutdown()
    }
}
