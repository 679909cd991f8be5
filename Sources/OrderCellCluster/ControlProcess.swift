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
    /// Where the cells' Patroni clusters keep their state: the control plane
    /// follows each cell's leader there. Nil: storage changes only by a release.
    public var patroni: PatroniDCS?
    public var tokens: OperatorTokens
    /// The routing table to publish when the control database has none yet.
    public var initialRoutingFile: String?
    /// How the health checker judges cells; nil runs none.
    public var healthCheck: HealthCheckPolicy?
    /// TLS to the cell services (the health checker's probes).
    public var cellTLS: CellClientTLS
    /// TLS of its HTTP listener (the admin API, the followers' long polls).
    public var httpTLS: HTTPServerTLS
    /// Seals the secrets of the access keys it makes (docs/security.md); nil: it makes none.
    public var credentials: CredentialSealer?
    /// Seals merchants' notification secrets (docs/events.md); nil: it registers no notify endpoints.
    public var notifications: CredentialSealer?
    /// The control database's password, when it is not in the URL (read from a file: not on the command line).
    public var databasePassword: String?

    public init(
        host: String, port: Int, database: String, databaseTLS: PostgresTLSMode = .require,
        cellTLS: CellClientTLS, httpTLS: HTTPServerTLS, tokens: OperatorTokens, initialRoutingFile: String?, healthCheck: HealthCheckPolicy? = HealthCheckPolicy(),
        patroni: PatroniDCS? = nil, credentials: CredentialSealer? = nil, notifications: CredentialSealer? = nil, databasePassword: String? = nil
    ) {
        self.notifications = notifications
        self.databasePassword = databasePassword
        self.cellTLS = cellTLS
        self.httpTLS = httpTLS
        self.credentials = credentials
        self.host = host
        self.port = port
        self.database = database
        self.databaseTLS = databaseTLS
        self.patroni = patroni
        self.tokens = tokens
        self.initialRoutingFile = initialRoutingFile
        self.healthCheck = healthCheck
    }

    public func run(logger: Logger) async throws {
        let url: PostgresEndpoint
        do {
            var parsed = try PostgresEndpoint(parsing: database)
            if let databasePassword { parsed.password = databasePassword }
            url = parsed
        } catch {
            // The error never echoes the URL: it may hold a password.
            throw ValidationFailure("--database: \(error.detail)")
        }
        // The release store first in the group: it shuts down last, once the server has drained.
        // Everything that needs the releases (the control plane, its server, the health checker)
        // starts after the store is prepared, in a group of its own within this one.
        let store = PostgresRoutingReleaseStore(endpoint: url, tls: databaseTLS, logger: logger)
        let serving = ServingAfter(then: { try await serve(store, at: url, logger: logger) })
        var configuration = ServiceGroupConfiguration(
            services: [.init(service: store), .init(service: serving)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        )
        configuration.maximumGracefulShutdownDuration = ProcessShutdown.drainLimit
        try await ServiceGroup(configuration: configuration).run()
    }

    /// Prepares the release store, starts the control plane from its newest
    /// release, and returns what serves it: the HTTP server, the health
    /// checker and its cell clients, shut down in that order.
    private func serve(_ store: PostgresRoutingReleaseStore, at url: PostgresEndpoint, logger: Logger) async throws -> ServiceGroup {
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
        let clients = CellServiceClients(tls: cellTLS, timeout: .seconds(2), logger: logger)
        let follower = patroni.map { PatroniFollower(control: control, patroni: PatroniClient(dcs: $0), logger: logger) }
        let indexSlotMover = IndexSlotMover(control: control, cells: CellIndexSlotCopier(clients: clients), logger: logger)
        let api = ControlAdminAPI(
            control: control, tokens: tokens, patroni: follower, indexSlotMover: indexSlotMover, credentials: credentials,
            notificationSealer: notifications, notifiers: CellNotifierCalls(clients: clients), clock: wallClock, logger: logger
        )
        // The order API's server: undecodable requests get a problem+json 400 here too.
        let application = OrderHTTPServer(
            host: host, port: port, responder: api.buildRouter().buildResponder(), tls: httpTLS, serverName: "OrderCell control", logger: logger,
            // Followers' long polls are answered at once, not held until the drain's limit.
            onGracefulShutdown: { control.endLongPolls() }
        )
        var services: [any Service] = [clients]
        clients.prepare(for: control.routingTable)
        control.onPublish { clients.prepare(for: $0) }
        if let follower { services.append(follower) }
        if let healthCheck {
            services.append(
                HealthChecker(control: control, clients: clients, policy: healthCheck, indexSlotMover: indexSlotMover, clock: wallClock, logger: logger)
            )
        }
        services.append(
            MerchantKeyReconciler(
                routing: { control.routingTable }, clients: clients, clock: wallClock, logger: logger,
                onBackfillDone: { try await control.endIndexBackfill() }
            )
        )
        services.append(application)
        return ServiceGroup(services: services, logger: logger)
    }
}

/// A command-line setting that cannot work.
public struct ValidationFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
