import AsyncHTTPClient
import CellRouting
import CellService
import ControlPlane
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import OrderModel
import OrderProxy
import ServiceLifecycle
import UnixSignals

/// `ordercell proxy`: the public HTTP API over gRPC clients of the cells,
/// following the control plane's routing table.
public struct ProxyProcess: Sendable {
    public var host: String
    public var port: Int
    public var controlURL: String
    public var adminToken: String
    /// Where the last routing table received is kept (nil: nowhere).
    public var snapshotPath: String?

    public init(host: String, port: Int, controlURL: String, adminToken: String, snapshotPath: String? = nil) {
        self.host = host
        self.port = port
        self.controlURL = controlURL
        self.adminToken = adminToken
        self.snapshotPath = snapshotPath
    }

    /// The routing table to start from: the control plane's, or, when it
    /// does not answer within a few seconds, the local snapshot.
    static func initialTable(_ watcher: RoutingWatcher, snapshot: RoutingSnapshot?, logger: Logger) async throws -> RoutingTable {
        do {
            let table = try await watcher.fetch(timeout: snapshot?.load() == nil ? .seconds(30) : .seconds(3))
            try? snapshot?.save(table)
            return table
        } catch {
            guard let loaded = snapshot?.load() else { throw error }
            let age = Int(Date().timeIntervalSince(loaded.writtenAt))
            logger.warning(
                "control plane unreachable: starting from the routing snapshot",
                metadata: ["version": "\(loaded.table.version)", "snapshot_age_seconds": "\(age)", "path": "\(snapshot!.path)"]
            )
            return loaded.table
        }
    }

    public func run(logger: Logger) async throws {
        let watcher = RoutingWatcher(controlURL: controlURL, logger: logger)
        let snapshot = snapshotPath.map(RoutingSnapshot.init(path:))
        let table = try await Self.initialTable(watcher, snapshot: snapshot, logger: logger)
        let configuration = ProxyConfiguration()
        let clients = GRPCCellClients(timeout: configuration.cellCallTimeout, logger: logger)
        clients.prepare(for: table)
        let proxy = OrderProxy(routingTable: table, clients: clients, configuration: configuration, clock: wallClock, logger: logger)
        let api = ProxyHTTPAPI(
            proxy: proxy, drills: clients, routingChanges: ControlRoutingChanges(controlURL: controlURL, adminToken: adminToken),
            adminToken: adminToken, clock: wallClock, logger: logger
        )
        let follower = TaskService {
            await watcher.watch(from: table.version) { table in
                clients.prepare(for: table)
                if proxy.install(table) {
                    logger.info("routing table installed", metadata: ["version": "\(table.version)"])
                    do { try snapshot?.save(table) } catch { logger.error("cannot write the routing snapshot", metadata: ["error": "\(error)"]) }
                }
            }
        }
        let application = Application(
            router: api.buildRouter(), configuration: .init(address: .hostname(host, port: port), serverName: "OrderCell"), logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: application), .init(service: follower)], gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        clients.shutdown()
    }
}

/// Operator routing changes made through the control plane's admin API.
struct ControlRoutingChanges: RoutingChanges {
    let controlURL: String
    let adminToken: String

    func blacklist(_ cell: CellID, _ entry: BlacklistEntry) async throws -> RoutingTable {
        var body: [String: Any] = ["reason": entry.reason]
        if let until = entry.until {
            body["expires_in_seconds"] = max(1, Int((until.millisecondsSinceEpoch - entry.since.millisecondsSinceEpoch) / 1000))
        }
        return try await send(.PUT, "/admin/cells/\(cell)/blacklist", body: try JSONSerialization.data(withJSONObject: body))
    }

    func unblacklist(_ cell: CellID) async throws -> RoutingTable {
        try await send(.DELETE, "/admin/cells/\(cell)/blacklist", body: nil)
    }

    private func send(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> RoutingTable {
        var request = HTTPClientRequest(url: controlURL + path)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(adminToken)")
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let data = try await response.body.collect(upTo: 16 << 20)
        guard response.status == .ok else {
            throw OrderError(.cellUnavailable, "the control plane refused the change: \(response.status) \(String(buffer: data))")
        }
        return try JSONDecoder().decode(RoutingTable.self, from: Data(data.readableBytesView))
    }
}
