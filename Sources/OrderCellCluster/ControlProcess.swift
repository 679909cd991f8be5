import AsyncHTTPClient
import CellProtocol
import CellRouting
import ControlPlane
import Foundation
import HealthChecking
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import OrderCellPlatform
import OrderHTTP
import OrderModel
import OrderProxy
import ServiceLifecycle
import UnixSignals

/// `ordercell control`: the control plane over its control database, and
/// the health checker probing every cell over the cell protocol.
public struct ControlProcess: Sendable {
    public var host: String
    public var port: Int
    public var database: String
    /// TLS to the control database.
    public var databaseTLS: PostgresTLSMode
    /// TLS to the cells' PostgreSQL servers (failover), as the cell services use.
    public var cellStorageTLS: PostgresTLSMode
    public var tokens: OperatorTokens
    /// The routing table to publish when the control database has none yet.
    public var initialRoutingFile: String?
    /// How the health checker judges cells; nil runs none.
    public var healthCheck: HealthCheckPolicy?
    /// TLS to the cell services (the health checker's probes).
    public var cellTLS: CellClientTLS

    public init(
        host: String, port: Int, database: String, databaseTLS: PostgresTLSMode = .require, cellStorageTLS: PostgresTLSMode = .require,
        cellTLS: CellClientTLS, tokens: OperatorTokens, initialRoutingFile: String?, healthCheck: HealthCheckPolicy? = HealthCheckPolicy()
    ) {
        self.cellTLS = cellTLS
        self.host = host
        self.port = port
        self.database = database
        self.databaseTLS = databaseTLS
        self.cellStorageTLS = cellStorageTLS
        self.tokens = tokens
        self.initialRoutingFile = initialRoutingFile
        self.healthCheck = healthCheck
    }

    public func run(logger: Logger) async throws {
        let url: PostgresEndpoint
        do {
            url = try PostgresEndpoint(parsing: database)
        } catch {
            // The error never echoes the URL: it may hold a password.
            throw ValidationFailure("--database: \(error.detail)")
        }
        // The release store's connections outlive the service group: they close once its last service has stopped.
        let store = PostgresRoutingReleaseStore(endpoint: url, tls: databaseTLS, logger: logger)
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask { await store.run() }
            defer { store.close() }
            try await serve(store, at: url, logger: logger)
        }
    }

    private func serve(_ store: PostgresRoutingReleaseStore, at url: PostgresEndpoint, logger: Logger) async throws {
        do {
            try await store.prepare()
        } catch {
            let why = await PostgresServerProbe.diagnose(url, tls: databaseTLS, flag: "--database-tls", failure: error, logger: logger)
            throw ValidationFailure("the control database could not be used: \(why)")
        }
        let initial: RoutingTable
        if let latest = try await store.latest() {
            initial = latest.table
        } else if let initialRoutingFile {
            initial = try JSONDecoder().decode(RoutingTable.self, from: Data(contentsOf: URL(fileURLWithPath: initialRoutingFile)))
        } else {
            throw ValidationFailure("the control database has no routing table yet: pass --routing FILE")
        }
        let control = try await ControlPlane(store: store, initialTable: initial, logger: logger)
        let api = ControlAdminAPI(control: control, tokens: tokens, failoverTLS: cellStorageTLS, clock: wallClock, logger: logger)
        // The order API's server: undecodable requests get a problem+json 400 here too.
        let application = OrderHTTPServer(
            host: host, port: port, responder: api.buildRouter().buildResponder(), serverName: "OrderCell control", logger: logger,
            // Followers' long polls are answered at once rather than cut when the drain gives up.
            onGracefulShutdown: { control.endLongPolls() }
        )
        let clients = CellServiceClients(tls: cellTLS, timeout: .seconds(2), logger: logger)
        // Shut down in reverse: the server drains first, the cell clients close last.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: clients)]
        if let healthCheck {
            clients.prepare(for: control.routingTable)
            control.onPublish { clients.prepare(for: $0) }
            services.append(.init(service: HealthChecker(control: control, clients: clients, policy: healthCheck, clock: wallClock, logger: logger)))
        }
        services.append(.init(service: application))
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// A command-line setting that cannot work.
public struct ValidationFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
