import CellRouting
import CellService
import CellStorage
import Foundation
import Hummingbird
import Logging
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
    /// Bearer token of the operator endpoints; `nil` disables them.
    public var adminToken: String?
    public var expirySweepInterval: Duration

    public init(
        dataDirectory: String, host: String = "127.0.0.1", port: Int = 8080, layout: EmbeddedLayout = .standard,
        proxy: ProxyConfiguration = .init(), adminToken: String? = nil, expirySweepInterval: Duration = .seconds(1)
    ) {
        self.dataDirectory = dataDirectory
        self.host = host
        self.port = port
        self.layout = layout
        self.proxy = proxy
        self.adminToken = adminToken
        self.expirySweepInterval = expirySweepInterval
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
/// cell, a proxy routing to them in process, the HTTP API, and the expiry
/// sweep. What `ordercell dev` runs, and what the tests start.
public final class EmbeddedSystem: Sendable {
    public let configuration: EmbeddedConfiguration
    public let proxy: OrderProxy
    public let cells: [CellID: CellService]
    public let sweeper: ExpirySweeper
    public let api: ProxyHTTPAPI
    private let logger: Logger

    /// The wall clock in whole milliseconds.
    public static let systemClock: @Sendable () -> Timestamp = wallClock

    private init(
        configuration: EmbeddedConfiguration, proxy: OrderProxy, cells: [CellID: CellService], sweeper: ExpirySweeper,
        api: ProxyHTTPAPI, logger: Logger
    ) {
        self.configuration = configuration
        self.proxy = proxy
        self.cells = cells
        self.sweeper = sweeper
        self.api = api
        self.logger = logger
    }

    /// Opens every cell's database (creating the data directory and files
    /// on first start) and wires the proxy to the cells.
    public static func open(
        _ configuration: EmbeddedConfiguration, clock: @escaping @Sendable () -> Timestamp = systemClock,
        logger: Logger = Logger(label: "ordercell")
    ) async throws -> EmbeddedSystem {
        let cellsDirectory = URL(fileURLWithPath: configuration.dataDirectory).appendingPathComponent("cells")
        try FileManager.default.createDirectory(at: cellsDirectory, withIntermediateDirectories: true)
        let layout = configuration.layout
        let table = try RoutingTable(
            cells: layout.cells, partitions: layout.partitions, defaultPartition: layout.defaultPartition,
            merchantPartitions: layout.merchantPartitions
        )
        var services: [CellID: CellService] = [:]
        for cell in layout.cells {
            let name = "cell-" + String(repeating: "0", count: 4 - cell.id.description.count) + cell.id.description
            let path = cellsDirectory.appendingPathComponent(name + ".sqlite").path
            let store = try await SQLiteOrderStore.open(path: path)
            services[cell.id] = CellService(cell: cell.id, store: store, clock: clock, logger: logger)
        }
        let proxy = OrderProxy(
            routingTable: table,
            clients: FixedCellClients(services.mapValues { InProcessCellClient(service: $0, timeout: configuration.proxy.cellCallTimeout) }),
            configuration: configuration.proxy, clock: clock, logger: logger
        )
        let api = ProxyHTTPAPI(
            proxy: proxy, drills: InProcessDrillControl(services: services), adminToken: configuration.adminToken,
            clock: clock, logger: logger
        )
        let sweeper = ExpirySweeper(
            cells: services.keys.sorted().compactMap { services[$0] }, interval: configuration.expirySweepInterval,
            logger: logger
        )
        return EmbeddedSystem(configuration: configuration, proxy: proxy, cells: services, sweeper: sweeper, api: api, logger: logger)
    }

    /// The HTTP application serving the API on the configured address.
    public func application(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            router: api.buildRouter(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "OrderCell"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    /// Runs the HTTP server and the expiry sweep until SIGTERM or SIGINT,
    /// then shuts down gracefully (in-flight requests finish).
    public func run(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: sweeper), .init(service: application(onServerRunning: onServerRunning))],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
