import AsyncHTTPClient
import CellProtocol
import CellRouting
import CellService
import CellStorage
import ControlPlane
import Foundation
import HealthChecking
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
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
        guard let url = PostgresEndpoint(url: database) else {
            // Not echoed: the URL may hold a password.
            throw ValidationFailure("--database must be postgres://user[:password]@host:port/database")
        }
        let store: PostgresRoutingReleaseStore
        do {
            store = try await PostgresRoutingReleaseStore(endpoint: url, tls: databaseTLS, logger: logger)
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
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: application)]
        let clients = CellServiceClients(tls: cellTLS, timeout: .seconds(2), logger: logger)
        if let healthCheck {
            clients.prepare(for: control.routingTable)
            control.onPublish { clients.prepare(for: $0) }
            services.append(.init(service: HealthChecker(control: control, clients: clients, policy: healthCheck, clock: wallClock, logger: logger)))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        clients.shutdown()
    }
}

/// A command-line setting that cannot work.
public struct ValidationFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The operator's client of the control plane's admin API (`ordercell
/// admin`, and proxies forwarding operator changes).
public struct ControlAdminClient: Sendable {
    public var controlURL: String
    public var token: String

    public init(controlURL: String, token: String) {
        self.controlURL = controlURL
        self.token = token
    }

    /// Sends one request; a refusal comes back as the control plane's typed error.
    public func send(_ method: HTTPMethod, _ path: String, body: Data? = nil, timeout: Int64 = 30) async throws -> Data {
        var request = HTTPClientRequest(url: controlURL + path)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeout))
        let data = Data((try await response.body.collect(upTo: 16 << 20)).readableBytesView)
        guard (200..<300).contains(response.status.code) else {
            let problem = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
            let code = (problem?["code"] as? String).flatMap(OrderErrorCode.init(rawValue:)) ?? .internalError
            let detail = problem?["detail"] as? String ?? "\(response.status) \(String(decoding: data, as: UTF8.self))"
            throw OrderError(code, detail)
        }
        return data
    }

    /// Fails a cell over to its replica; returns a summary of the new routing.
    public func failover(cell: Int) async throws -> String {
        let data = try await send(.POST, "/admin/cells/\(cell)/failover", timeout: 120)
        let table = try JSONDecoder().decode(ChangeResultView.self, from: data).routing
        let storage = table.cells.values.first { Int($0.id.rawValue) == cell }?.storage
        return "cell \(cell) failed over: primary is now \(storage?.primary ?? "?"); routing version \(table.version)"
    }
}
