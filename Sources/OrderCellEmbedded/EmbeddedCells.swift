import CellRouting
import CellService
import CellStorage
import Foundation
import Logging
import OrderModel
import OrderProxy
import ServiceLifecycle
import Synchronization

/// The cell services of the embedded deployment, one SQLite file each.
/// A cell added to the routing gets its file when the release is prepared,
/// before any proxy can place an order in it.
///
/// A `Service`: ``run()`` runs every open store's checkpoints, those of
/// cells added later included, until graceful shutdown or cancellation.
final class EmbeddedCells: CellClientProvider, CellDrillControl, Service, Sendable {
    private let directory: URL
    private let timeout: Duration
    private let groupCommit: GroupCommitConfiguration
    private let clock: @Sendable () -> Timestamp
    private let logger: Logger
    private let running = Mutex<[CellID: CellService]>([:])
    private let clients = Mutex<[CellID: InProcessCellClient]>([:])
    /// Stores opened, for ``run()`` to run.
    private let opened = AsyncStream<SQLiteOrderStore>.makeStream()

    init(directory: URL, timeout: Duration, groupCommit: GroupCommitConfiguration, clock: @escaping @Sendable () -> Timestamp, logger: Logger) {
        self.directory = directory
        self.timeout = timeout
        self.groupCommit = groupCommit
        self.clock = clock
        self.logger = logger
    }

    var services: [CellID: CellService] { running.withLock { $0 } }

    /// Opens the database of every cell of `table` that is not open yet.
    func open(_ table: RoutingTable) async throws {
        for cell in table.sortedCells where running.withLock({ $0[cell.id] == nil }) {
            let name = "cell-" + String(repeating: "0", count: 4 - cell.id.description.count) + cell.id.description
            let store = try await SQLiteOrderStore.open(path: directory.appendingPathComponent(name + ".sqlite").path, logger: logger)
            let service = CellService(cell: cell.id, store: store, groupCommit: groupCommit, clock: clock, logger: logger)
            let added = running.withLock { running in
                guard running[cell.id] == nil else { return false }
                running[cell.id] = service
                return true
            }
            guard added else { continue }
            opened.continuation.yield(store)
            clients.withLock { $0[cell.id] = $0[cell.id] ?? InProcessCellClient(service: service, timeout: timeout) }
        }
        // Every release passes here before it is published: cells learn their index slots before any proxy routes by them.
        for (cell, service) in running.withLock({ $0 }) { service.holdIndexSlots(Set(table.indexSlots.slots(of: cell))) }
    }

    func run() async {
        let stores = opened.stream
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await store in stores { group.addTask { await store.run() } }
            }
        }
    }

    func client(for route: CellRoute) -> (any CellClient)? { clients.withLock { $0[route.id] } }

    /// In process the operator is the one the admin API authenticated; the log line says who.
    func setFault(_ fault: CellFault, calls: Int?, on cell: CellID, by operator: String) async throws {
        guard let service = services[cell] else { throw OrderError(.notFound, "cell \(cell) does not run here") }
        service.inject(fault, calls: calls, by: `operator`)
    }

    func fault(of cell: CellID) async throws -> CellFault {
        guard let service = services[cell] else { throw OrderError(.notFound, "cell \(cell) does not run here") }
        return service.currentFault
    }
}
