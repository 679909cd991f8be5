import CellNotifier
import CellRouting
import CellService
import CellStorage
import ControlPlane
import Foundation
import HealthChecking
import Hummingbird
import Logging
import OrderCellPlatform
import OrderHTTP
import OrderModel
import OrderProxy
import ServiceLifecycle
import UnixSignals

/// Settings of the embedded deployment.
public struct EmbeddedConfiguration: Sendable {
    /// Directory holding one SQLite file per cell; it survives restarts.
    public var dataDirectory: String
    public var host: String
    public var port: Int
    /// The cells and partitions to run.
    public var layout: EmbeddedLayout
    public var proxy: ProxyConfiguration
    /// Bearer token of the operator role; `nil` disables the operator endpoints.
    public var adminToken: String?
    /// Bearer token of the viewer role (read-only operator endpoints).
    public var viewerToken: String?
    public var expirySweepInterval: Duration
    /// How the health checker judges cells; `nil` runs none.
    public var healthCheck: HealthCheckPolicy?
    /// How each cell groups concurrent creates into shared transactions.
    public var groupCommit: GroupCommitConfiguration
    /// How long the merchant-key reconciler leaves a new order or a moved
    /// key to its create before verifying or settling it.
    public var merchantKeyGrace: Duration
    /// Whether the public API takes only signed requests (`ordercell dev --auth`,
    /// docs/security.md); off, every caller may do everything. Access keys can
    /// be made either way: the credential key is `credential.key` in the data directory.
    public var requireSignedRequests: Bool
    /// How the cells' notifiers send merchant notifications (docs/events.md); nil runs none.
    public var notifier: NotifierConfiguration?

    public init(
        dataDirectory: String, host: String = "127.0.0.1", port: Int = 8080, layout: EmbeddedLayout = .standard,
        proxy: ProxyConfiguration = .init(), adminToken: String? = nil, viewerToken: String? = nil,
        expirySweepInterval: Duration = .seconds(1), healthCheck: HealthCheckPolicy? = HealthCheckPolicy(),
        groupCommit: GroupCommitConfiguration = .init(), merchantKeyGrace: Duration = .seconds(5), requireSignedRequests: Bool = false,
        notifier: NotifierConfiguration? = NotifierConfiguration()
    ) {
        self.notifier = notifier
        self.requireSignedRequests = requireSignedRequests
        self.dataDirectory = dataDirectory
        self.host = host
        self.port = port
        self.layout = layout
        self.proxy = proxy
        self.adminToken = adminToken
        self.viewerToken = viewerToken
        self.expirySweepInterval = expirySweepInterval
        self.healthCheck = healthCheck
        self.groupCommit = groupCommit
        self.merchantKeyGrace = merchantKeyGrace
    }
}

/// Which cells run embedded and how they are partitioned.
public struct EmbeddedLayout: Sendable {
    public var partitions: [Partition]
    public var defaultPartition: PartitionName
    public var cells: [CellRoute]
    public var merchantPartitions: [String: PartitionName]

    public init(partitions: [Partition], defaultPartition: PartitionName, cells: [CellRoute], merchantPartitions: [String: PartitionName] = [:]) {
        self.partitions = partitions
        self.defaultPartition = defaultPartition
        self.cells = cells
        self.merchantPartitions = merchantPartitions
    }

    /// Four cells in two partitions: cells 1-2 `normal` (the default),
    /// cells 3-4 `vip`, with merchant `vip-merchant` pinned to `vip`.
    public static let standard = EmbeddedLayout(
        partitions: [Partition(name: "normal", kind: .normal), Partition(name: "vip", kind: .vip)],
        defaultPartition: "normal",
        cells: [
            CellRoute(id: CellID(unchecked: 1), partition: "normal"),
            CellRoute(id: CellID(unchecked: 2), partition: "normal"),
            CellRoute(id: CellID(unchecked: 3), partition: "vip"),
            CellRoute(id: CellID(unchecked: 4), partition: "vip"),
        ],
        merchantPartitions: ["vip-merchant": "vip"]
    )

    /// `count` cells numbered from 1, all in one `normal` partition.
    public static func singlePartition(cells count: Int) -> EmbeddedLayout {
        EmbeddedLayout(
            partitions: [Partition(name: "normal", kind: .normal)],
            defaultPartition: "normal",
            cells: (1...count).map { CellRoute(id: CellID(unchecked: UInt16($0)), partition: "normal") }
        )
    }
}

/// The whole system in one process: a cell service over a SQLite file per
/// cell, a proxy routing to them in process, the control plane over a
/// SQLite control database (mounted at `/control` on the same port), the
/// health checker, the HTTP API, and the expiry sweep. What `ordercell dev`
/// runs, and what the tests start.
public final class EmbeddedSystem: Sendable {
    public let configuration: EmbeddedConfiguration
    public let proxy: OrderProxy
    public let control: ControlPlane
    public let healthChecker: HealthChecker
    public let keyReconciler: MerchantKeyReconciler
    public let sweeper: ExpirySweeper
    public let api: ProxyHTTPAPI
    /// Makes, rotates and revokes access keys (the control plane's, in process).
    public let accessKeys: AccessKeyIssuer
    /// Registers merchants' notify endpoints (the control plane's, in process).
    public let notifyEndpoints: NotifyEndpointRegistry
    private let notifiers: EmbeddedNotifiers
    private let cellRegistry: EmbeddedCells
    private let controlAPI: ControlAdminAPI
    private let logger: Logger

    /// The wall clock in whole milliseconds.
    public static let systemClock: @Sendable () -> Timestamp = wallClock

    /// The cells' notifiers by id (those started so far).
    public var cellNotifiers: [CellID: CellNotifier] { notifiers.notifiers }

    /// The running cell services by id.
    public var cells: [CellID: CellService] { cellRegistry.services }

    private init(
        configuration: EmbeddedConfiguration, proxy: OrderProxy, control: ControlPlane, healthChecker: HealthChecker,
        keyReconciler: MerchantKeyReconciler, cells: EmbeddedCells, sweeper: ExpirySweeper, api: ProxyHTTPAPI, controlAPI: ControlAdminAPI,
        accessKeys: AccessKeyIssuer, notifyEndpoints: NotifyEndpointRegistry, notifiers: EmbeddedNotifiers, logger: Logger
    ) {
        self.accessKeys = accessKeys
        self.notifyEndpoints = notifyEndpoints
        self.notifiers = notifiers
        self.configuration = configuration
        self.proxy = proxy
        self.control = control
        self.healthChecker = healthChecker
        self.keyReconciler = keyReconciler
        self.cellRegistry = cells
        self.sweeper = sweeper
        self.api = api
        self.controlAPI = controlAPI
        self.logger = logger
    }

    /// Opens the control database and every cell's database (creating the
    /// data directory and files on first start) and wires the proxy to the
    /// cells. A restarted system routes by the newest release in its control
    /// database, so operator changes survive restarts.
    public static func open(
        _ configuration: EmbeddedConfiguration, clock: @escaping @Sendable () -> Timestamp = systemClock,
        logger: Logger = Logger(label: "ordercell")
    ) async throws -> EmbeddedSystem {
        let directory = URL(fileURLWithPath: configuration.dataDirectory)
        let cellsDirectory = directory.appendingPathComponent("cells")
        try FileManager.default.createDirectory(at: cellsDirectory, withIntermediateDirectories: true)
        let layout = configuration.layout
        let initial = try RoutingTable(
            cells: layout.cells, partitions: layout.partitions, defaultPartition: layout.defaultPartition,
            merchantPartitions: layout.merchantPartitions
        )
        let cells = EmbeddedCells(
            directory: cellsDirectory, timeout: configuration.proxy.cellCallTimeout, groupCommit: configuration.groupCommit, clock: clock, logger: logger
        )
        let store = try await SQLiteRoutingReleaseStore.open(path: directory.appendingPathComponent("control.sqlite").path)
        let control = try await ControlPlane(store: store, initialTable: initial, logger: logger) { table in
            try await cells.open(table)
        }
        let table = control.routingTable
        try await cells.open(table)
        let proxy = OrderProxy(routingTable: table, clients: cells, configuration: configuration.proxy, clock: clock, logger: logger)
        control.onPublish { proxy.install($0) }
        let tokens = OperatorTokens(adminToken: configuration.adminToken, viewerToken: configuration.viewerToken)
        let credentials = try CredentialSealer.loadOrCreate(keyFile: directory.appendingPathComponent("credential.key").path)
        // Merchants' notification secrets under a key of their own, as in a cluster (where the cells hold only it).
        let notificationKey = try CredentialSealer.loadOrCreate(keyFile: directory.appendingPathComponent("notification.key").path)
        let authenticator = configuration.requireSignedRequests
            ? RequestAuthenticator(sealer: credentials, keys: { proxy.routingTable.accessKeys }) : nil
        let api = ProxyHTTPAPI(
            proxy: proxy, drills: cells, routingChanges: ControlPlaneRoutingChanges(control: control), tokens: tokens,
            routingStatus: RoutingStatus(source: .inProcess), authenticator: authenticator, clock: clock, logger: logger
        )
        let indexSlotMover = IndexSlotMover(control: control, cells: CellIndexSlotCopier(clients: cells), logger: logger)
        let controlAPI = ControlAdminAPI(
            control: control, tokens: tokens, pathPrefix: "/control", servesFollowers: false, indexSlotMover: indexSlotMover,
            credentials: credentials, notificationSealer: notificationKey, notifiers: CellNotifierCalls(clients: cells), clock: clock, logger: logger
        )
        let healthChecker = HealthChecker(
            control: control, clients: cells, policy: configuration.healthCheck ?? HealthCheckPolicy(), indexSlotMover: indexSlotMover, clock: clock,
            logger: logger
        )
        let keyReconciler = MerchantKeyReconciler(
            routing: { control.routingTable }, clients: cells, grace: configuration.merchantKeyGrace, clock: clock, logger: logger,
            onBackfillDone: { try await control.endIndexBackfill() }
        )
        let sweeper = ExpirySweeper(cells: { cells.services.sorted { $0.key < $1.key }.map(\.value) }, interval: configuration.expirySweepInterval, logger: logger)
        return EmbeddedSystem(
            configuration: configuration, proxy: proxy, control: control, healthChecker: healthChecker, keyReconciler: keyReconciler,
            cells: cells, sweeper: sweeper,
            api: api, controlAPI: controlAPI, accessKeys: AccessKeyIssuer(control: control, sealer: credentials, clock: clock),
            notifyEndpoints: NotifyEndpointRegistry(control: control, sealer: notificationKey, clock: clock),
            notifiers: EmbeddedNotifiers(
                cells: cells, endpoints: { control.routingTable.notifyEndpoints }, sealer: notificationKey,
                configuration: configuration.notifier ?? NotifierConfiguration(), clock: clock, logger: logger
            ),
            logger: logger
        )
    }

    /// The router of the whole API: the proxy's, and the control plane's under `/control`.
    public func buildRouterAndRoutes() -> (router: Router<OrderRequestContext>, routes: [APIRoute]) {
        api.buildRouterAndRoutes { controlAPI.addRoutes(&$0) }
    }

    /// The HTTP server serving the API on the configured address.
    public func application(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some Service {
        OrderHTTPServer(
            host: configuration.host, port: configuration.port, responder: buildRouterAndRoutes().router.buildResponder(),
            // Loopback only, said at start: `ordercell dev` is the walkthrough, not a deployment.
            tls: .disabled, logger: logger,
            onServerRunning: onServerRunning
        )
    }

    /// Everything the system runs, in the order a service group starts them;
    /// it shuts them down in reverse: the HTTP server drains first, the
    /// cells' checkpoints stop last.
    public func services(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> [any Service] {
        var services: [any Service] = [cellRegistry, sweeper, keyReconciler]
        if configuration.notifier != nil { services.append(notifiers) }
        if configuration.healthCheck != nil { services.append(healthChecker) }
        services.append(application(onServerRunning: onServerRunning))
        return services
    }

    /// Runs ``services(onServerRunning:)`` until SIGTERM or SIGINT, then
    /// shuts down gracefully (in-flight requests finish).
    public func run(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        var configuration = ServiceGroupConfiguration(
            services: services(onServerRunning: onServerRunning).map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        )
        // A client stalled in the middle of a request must not hold the drain until its idle timeout (75 s).
        configuration.maximumGracefulShutdownDuration = .seconds(15)
        try await ServiceGroup(configuration: configuration).run()
    }
}

/// Operator routing changes made through the proxy's endpoints, published
/// by the in-process control plane.
struct ControlPlaneRoutingChanges: RoutingChanges {
    let control: ControlPlane

    func blacklist(_ cell: CellID, _ entry: BlacklistEntry, expectedVersion: UInt64?, by token: OperatorToken) async throws -> RoutingTable {
        try await control.change(expectedVersion: expectedVersion, author: token.name, reason: "blacklist cell \(cell): \(entry.reason)") {
            try $0.blacklisting(cell, entry)
        }
    }

    func unblacklist(_ cell: CellID, reason: String?, expectedVersion: UInt64?, by token: OperatorToken) async throws -> RoutingTable {
        try await control.change(
            expectedVersion: expectedVersion, author: token.name, reason: "unblacklist cell \(cell): \(reason ?? "no reason given")"
        ) { try $0.unblacklisting(cell) }
    }
}
