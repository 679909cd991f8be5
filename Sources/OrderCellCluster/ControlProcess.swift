import CellRouting
import CellStorage
import ControlPlane
import Foundation
import Hummingbird
import Logging
import OrderModel
import ServiceLifecycle
import UnixSignals

/// `ordercell control`: the control plane over its control database.
public struct ControlProcess: Sendable {
    public var host: String
    public var port: Int
    public var database: String
    public var adminToken: String
    /// The routing table to publish when the control database has none yet.
    public var initialRoutingFile: String?

    public init(host: String, port: Int, database: String, adminToken: String, initialRoutingFile: String?) {
        self.host = host
        self.port = port
        self.database = database
        self.adminToken = adminToken
        self.initialRoutingFile = initialRoutingFile
    }

    public func run(logger: Logger) async throws {
        guard let url = PostgresEndpoint(url: database) else {
            throw ValidationFailure("--database must be postgres://user@host:port/database, got \(database)")
        }
        let store = try await PostgresRoutingReleaseStore(host: url.host, port: url.port, database: url.database, username: url.username, logger: logger)
        let initial: RoutingTable
        if let initialRoutingFile {
            initial = try JSONDecoder().decode(RoutingTable.self, from: Data(contentsOf: URL(fileURLWithPath: initialRoutingFile)))
        } else if let latest = try await store.latest() {
            initial = latest.table
        } else {
            throw ValidationFailure("the control database has no routing table yet: pass --routing FILE")
        }
        let control = try await ControlPlane(store: store, initialTable: initial, adminToken: adminToken, logger: logger)
        let application = Application(
            router: control.buildRouter(), configuration: .init(address: .hostname(host, port: port), serverName: "OrderCell control"),
            logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: application)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }
}

/// A command-line setting that cannot work.
public struct ValidationFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// The operator's client of the control plane's admin API.
public struct ControlAdminClient: Sendable {
    public var controlURL: String
    public var adminToken: String

    public init(controlURL: String, adminToken: String) {
        self.controlURL = controlURL
        self.adminToken = adminToken
    }

    /// Fails a cell over to its replica; returns a summary of the new routing.
    public func failover(cell: Int) async throws -> String {
        var request = HTTPClientRequest(url: "\(controlURL)/admin/cells/\(cell)/failover")
        request.method = .POST
        request.headers.add(name: "authorization", value: "Bearer \(adminToken)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        let body = try await response.body.collect(upTo: 16 << 20)
        guard response.status == .ok else {
            throw ValidationFailure("failover of cell \(cell) refused: \(response.status) \(String(buffer: body))")
        }
        let table = try JSONDecoder().decode(RoutingTable.self, from: Data(body.readableBytesView))
        let storage = table.cells.values.first { Int($0.id.rawValue) == cell }?.storage
        return "cell \(cell) failed over: primary is now \(storage?.primary ?? "?"); routing version \(table.version)"
    }
}
