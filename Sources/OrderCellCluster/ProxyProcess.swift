import AsyncHTTPClient
import CellProtocol
import CellRouting
import ControlPlane
import Foundation
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

/// `ordercell proxy`: the public HTTP API over cell protocol clients of the cells,
/// following the control plane's routing table.
public struct ProxyProcess: Sendable {
    public var host: String
    public var port: Int
    public var controlURL: String
    /// Token shown to the control plane to read the routing table (role viewer).
    public var controlToken: String?
    public var tokens: OperatorTokens
    /// Where the last routing table received is kept (nil: nowhere).
    public var snapshotPath: String?
    /// TLS to the cell services.
    public var cellTLS: CellClientTLS
    /// TLS of its public HTTP listener.
    public var httpTLS: HTTPServerTLS
    /// The client of the control plane (``TrustedHTTPClients``).
    public var controlHTTP: HTTPClient
    /// Opens the access keys' secrets; with it, the public API takes only signed requests (docs/security.md).
    public var credentials: CredentialSealer?

    public init(
        host: String, port: Int, controlURL: String, controlToken: String?, tokens: OperatorTokens, cellTLS: CellClientTLS,
        httpTLS: HTTPServerTLS, controlHTTP: HTTPClient = .shared, snapshotPath: String? = nil, credentials: CredentialSealer? = nil
    ) {
        self.httpTLS = httpTLS
        self.controlHTTP = controlHTTP
        self.cellTLS = cellTLS
        self.credentials = credentials
        self.controlToken = controlToken
        self.host = host
        self.port = port
        self.controlURL = controlURL
        self.tokens = tokens
        self.snapshotPath = snapshotPath
    }

    public func run(logger: Logger) async throws {
        let watcher = RoutingWatcher(controlURL: controlURL, token: controlToken, http: controlHTTP, logger: logger)
        let snapshot = snapshotPath.map(RoutingSnapshot.init(path:))
        let table: RoutingTable
        let status: RoutingStatus
        if let snapshot {
            let start = try await snapshot.startingTable(watcher, logger: logger)
            table = start.table
            status = start.snapshotWrittenAt.map { RoutingStatus(source: .snapshot, releaseReceivedAt: $0) }
                ?? RoutingStatus(source: .controlPlane, releaseReceivedAt: Date(), lastContact: Date())
        } else {
            table = try await watcher.fetch()
            status = RoutingStatus(source: .controlPlane, releaseReceivedAt: Date(), lastContact: Date())
        }
        let configuration = ProxyConfiguration()
        let clients = CellServiceClients(tls: cellTLS, timeout: configuration.cellCallTimeout, logger: logger)
        clients.prepare(for: table)
        let proxy = OrderProxy(routingTable: table, clients: clients, configuration: configuration, clock: wallClock, logger: logger)
        // Keys come with the routing the proxy follows: a key made, rotated or revoked takes effect with the push.
        let authenticator = credentials.map { RequestAuthenticator(sealer: $0, keys: { proxy.routingTable.accessKeys }) }
        let api = ProxyHTTPAPI(
            proxy: proxy, drills: clients, routingChanges: ControlRoutingChanges(controlURL: controlURL, http: controlHTTP), tokens: tokens,
            routingStatus: status, authenticator: authenticator, clock: wallClock, logger: logger
        )
        let follower = TaskService {
            await watcher.watch(from: table, onContact: { status.contacted() }) { table in
                clients.prepare(for: table)
                if proxy.install(table) {
                    status.installedFromControlPlane()
                    logger.info("routing table installed", metadata: ["version": "\(table.version)"])
                    do { try snapshot?.save(table) } catch { logger.error("cannot write the routing snapshot", metadata: ["error": "\(error)"]) }
                }
            }
        }
        let application = OrderHTTPServer(host: host, port: port, responder: api.buildRouter().buildResponder(), tls: httpTLS, logger: logger)
        // Shut down in reverse: the server drains first, then the follower stops, the cell clients close last.
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: clients), .init(service: follower), .init(service: application)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        )
        groupConfiguration.maximumGracefulShutdownDuration = ProcessShutdown.drainLimit
        let group = ServiceGroup(configuration: groupConfiguration)
        try await group.run()
        logger.notice("proxy stopped: requests under way answered, cell connections closed")
    }
}

/// Operator routing changes made through a proxy, forwarded to the control
/// plane's admin API with the operator's own token (so the control plane
/// records who made them).
struct ControlRoutingChanges: RoutingChanges {
    let controlURL: String
    let http: HTTPClient

    func blacklist(_ cell: CellID, _ entry: BlacklistEntry, expectedVersion: UInt64?, by token: OperatorToken) async throws -> RoutingTable {
        let expiresIn = entry.until.map { max(1, ($0.millisecondsSinceEpoch - entry.since.millisecondsSinceEpoch) / 1000) }
        let request = BlacklistRequest(reason: entry.reason, expiresInSeconds: expiresIn, expectedVersion: expectedVersion)
        return try await forwarding { try await client(token).blacklist(cell, request).routing }
    }

    func unblacklist(_ cell: CellID, reason: String?, expectedVersion: UInt64?, by token: OperatorToken) async throws -> RoutingTable {
        try await forwarding { try await client(token).unblacklist(cell, ReasonRequest(reason: reason, expectedVersion: expectedVersion)).routing }
    }

    /// The control plane's refusals come back as they are; a control plane that
    /// cannot be reached or does not answer is `503 control_plane_unavailable`, not a 500.
    private func forwarding(_ change: () async throws -> RoutingTable) async throws -> RoutingTable {
        do {
            return try await change()
        } catch let refusal as OrderError {
            throw refusal
        } catch {
            throw OrderError(.controlPlaneUnavailable, "the control plane at \(controlURL) did not take the change: \(error)", retryAfterSeconds: 1)
        }
    }

    private func client(_ token: OperatorToken) -> ControlAdminClient {
        ControlAdminClient(controlURL: controlURL, token: token.secret, http: http)
    }
}
