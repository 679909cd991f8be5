import AsyncHTTPClient
import CellNotifier
import CellProtocol
import CellRouting
import CellService
import CellStorage
import ControlPlane
import Foundation
import Logging
import OrderCellPlatform
import OrderHTTP
import OrderModel
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `ordercell cell`: one cell service over its cell's PostgreSQL servers,
/// serving the cell protocol. It learns where its storage is from the control
/// plane and follows failovers without a restart.
public struct CellProcess: Sendable {
    public var cell: CellID
    public var host: String
    /// Where it serves the cell protocol (0: a free port).
    public var port: Int
    public var controlURL: String
    /// Token shown to the control plane to read the routing table (role viewer).
    public var controlToken: String?
    public var tls: PostgresTLSMode
    /// TLS of the cell protocol it serves.
    public var protocolTLS: CellServerTLS
    /// The client of the control plane (``TrustedHTTPClients``).
    public var controlHTTP: HTTPClient
    /// Where the last routing table received is kept (nil: nowhere).
    public var snapshotPath: String?
    /// How concurrent creates share transactions (nil: each commits alone).
    public var groupCommit: GroupCommitConfiguration?
    /// Opens merchants' notification secrets; nil: no notifier runs (there is nothing to sign with).
    public var credentials: CredentialSealer?
    /// How the cell's notifier works; nil: none runs.
    public var notifier: NotifierConfiguration?

    public init(
        cell: CellID, host: String, port: Int, controlURL: String, controlToken: String?, tls: PostgresTLSMode, protocolTLS: CellServerTLS,
        controlHTTP: HTTPClient = .shared, snapshotPath: String? = nil, groupCommit: GroupCommitConfiguration? = .init(),
        credentials: CredentialSealer? = nil, notifier: NotifierConfiguration? = NotifierConfiguration()
    ) {
        self.credentials = credentials
        self.notifier = notifier
        self.controlHTTP = controlHTTP
        self.controlToken = controlToken
        self.groupCommit = groupCommit
        self.cell = cell
        self.host = host
        self.port = port
        self.controlURL = controlURL
        self.tls = tls
        self.protocolTLS = protocolTLS
        self.snapshotPath = snapshotPath
    }

    public func run(logger: Logger) async throws {
        let watcher = RoutingWatcher(controlURL: controlURL, token: controlToken, http: controlHTTP, logger: logger)
        let snapshot = snapshotPath.map(RoutingSnapshot.init(path:))
        let table: RoutingTable
        // Whether this process has heard from the control plane: until it has, a table from the snapshot may lack
        // endpoints registered meanwhile, and the notifier takes nothing from the feed.
        let routingCurrent = Atomic<Bool>(true)
        if let snapshot {
            let start = try await snapshot.startingTable(watcher, logger: logger)
            table = start.table
            routingCurrent.store(start.snapshotWrittenAt == nil, ordering: .relaxed)
        } else {
            table = try await watcher.fetch()
        }
        let cell = self.cell
        let (primary, replicas) = try Self.storage(of: cell, in: table)
        let configuration = PostgresCellConfiguration(primary: primary, replicas: replicas, tls: tls)
        // Its sessions name the process, so an operator (or a test) tells the cell's services apart in pg_stat_activity.
        let store = FollowingPostgresStore(configuration, applicationName: "ordercell-cell \(cell) pid \(getpid())", logger: logger)
        let service = CellService(cell: cell, store: store, groupCommit: groupCommit, clock: wallClock, logger: logger)
        // The index slots it holds, by the release it follows: index calls for other slots are refused.
        service.holdIndexSlots(Set(table.indexSlots.slots(of: cell)))
        // Where merchants are notified, by the release followed.
        let notifyEndpoints = Mutex(table.notifyEndpoints)
        let follower = TaskService {
            await watcher.watch(from: table, onContact: { routingCurrent.store(true, ordering: .relaxed) }) { table in
                notifyEndpoints.withLock { $0 = table.notifyEndpoints }
                do { try snapshot?.save(table) } catch { logger.error("cannot write the routing snapshot", metadata: ["error": "\(error)"]) }
                service.holdIndexSlots(Set(table.indexSlots.slots(of: cell)))
                let storage: (PostgresEndpoint, [PostgresEndpoint])
                do {
                    storage = try Self.storage(of: cell, in: table)
                } catch {
                    logger.error("the routing table names no usable storage for the cell; staying on the current one", metadata: ["error": "\(error)"])
                    return
                }
                // A new primary answers within moments of its release (the control plane publishes a Patroni leader
                // once it runs as the primary); until it does, or if it is a standby, the cell stays where it is.
                for attempt in 1...20 {
                    do {
                        try await store.follow(primary: storage.0, replicas: storage.1)
                        return
                    } catch {
                        if attempt == 20 { logger.error("cannot switch to the new storage of the cell", metadata: ["error": "\(error)"]) }
                        try? await Task.sleep(for: .milliseconds(250))
                    }
                }
            }
        }
        // The cell protocol is served, and expired orders swept, once the schema is current:
        // no call meets a missing table. They shut down together, the server first.
        let (host, port, protocolTLS) = (self.host, self.port, self.protocolTLS)
        let (credentials, notifierConfiguration) = (self.credentials, self.notifier)
        if credentials == nil, notifierConfiguration != nil {
            logger.warning("no --notification-key-file: this cell service runs no notifier, and merchants are not notified by it")
        }
        let serving = ServingAfter(
            prepare: { try await store.migrate() },
            then: {
                let server = try await CellProtocolServer.bind(
                    host: host, port: port, responder: CellProtocolService(cell: service), tls: protocolTLS, logger: logger
                )
                logger.notice("cell service starting", metadata: ["cell": "\(cell)", "port": "\(server.port)", "primary": "\(primary)"])
                var services: [any Service] = [ExpirySweeper(cells: [service], logger: logger), server]
                if let credentials, let notifierConfiguration {
                    services.append(
                        NotifierService(
                            cell: cell, store: store, endpoints: { notifyEndpoints.withLock { $0 } },
                            endpointsAreCurrent: { routingCurrent.load(ordering: .relaxed) }, sealer: credentials,
                            configuration: notifierConfiguration, holder: "cell \(cell) service :\(server.port) pid \(getpid())", logger: logger
                        )
                    )
                }
                return ServiceGroup(services: services, logger: logger)
            }
        )
        // Shut down in reverse: the server drains first; the store's connections close last.
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: store), .init(service: follower), .init(service: serving)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        )
        groupConfiguration.maximumGracefulShutdownDuration = ProcessShutdown.drainLimit
        let group = ServiceGroup(configuration: groupConfiguration)
        try await group.run()
        // Only after the group: the server has drained and the store's run() has returned, so its connections are closed.
        logger.notice("cell service stopped: calls under way answered, storage connections closed", metadata: ["cell": "\(cell)"])
    }

    static func storage(of cell: CellID, in table: RoutingTable) throws -> (PostgresEndpoint, [PostgresEndpoint]) {
        guard let route = table.cells[cell] else { throw OrderError(.notFound, "cell \(cell) is not in the routing table") }
        guard let storage = route.storage else {
            throw OrderError.invalidRequest("cell \(cell) has no PostgreSQL storage in the routing table")
        }
        return (storage.primary, storage.replicas)
    }
}

/// A cell service's notifier with its own HTTP client, made when it starts
/// and shut down when it stops.
struct NotifierService: Service {
    let cell: CellID
    let store: any OrderStore & NotificationStore
    let endpoints: @Sendable () -> [String: NotifyEndpoint]
    let endpointsAreCurrent: @Sendable () -> Bool
    let sealer: CredentialSealer
    let configuration: NotifierConfiguration
    let holder: String
    let logger: Logger

    func run() async throws {
        let sender = NotificationSender()
        let notifier = CellNotifier(
            cell: cell, store: store, endpoints: endpoints, endpointsAreCurrent: endpointsAreCurrent, sealer: sealer, sender: sender,
            configuration: configuration, holder: holder,
            clock: wallClock, logger: logger
        )
        try? await notifier.run()
        await sender.shutdown()
    }
}
