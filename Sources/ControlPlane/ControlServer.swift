import AsyncDeadline
import CellStorage
import CellRouting
import Foundation
import Hummingbird
import Logging
import NIOCore
import OrderModel
import PostgresNIO
import Synchronization

/// The control plane of a cluster: keeps the routing table as releases in
/// the control database, serves it to proxies and cell services (long
/// poll: a change reaches them as soon as it is published), and carries
/// out operator changes: blacklist, cell failover.
public final class ControlPlane: Sendable {
    private let store: PostgresRoutingReleaseStore
    private let current: Mutex<RoutingTable>
    private let changes = Mutex<Int>(0)
    private let logger: Logger
    public let adminToken: String

    public init(store: PostgresRoutingReleaseStore, initialTable: RoutingTable, adminToken: String, logger: Logger) async throws {
        self.store = store
        self.logger = logger
        self.adminToken = adminToken
        if let latest = try await store.latest() {
            current = Mutex(latest.table)
        } else {
            try await store.publish(initialTable, author: "ordercell control", reason: "initial routing table")
            current = Mutex(initialTable)
        }
    }

    public var routingTable: RoutingTable { current.withLock { $0 } }

    /// Publishes a change made against the current table.
    public func change(author: String, reason: String, _ body: (RoutingTable) throws -> RoutingTable) async throws -> RoutingTable {
        let base = routingTable
        let next: RoutingTable
        do {
            next = try body(base)
        } catch let error as RoutingTableError {
            throw HTTPError(.badRequest, message: error.description)
        }
        do {
            try await store.publish(next, author: author, reason: reason)
        } catch let error as RoutingPublishError {
            // Another change was published first: the operator retries against the new version.
            throw HTTPError(.conflict, message: error.description)
        }
        current.withLock { $0 = next }
        logger.notice("routing release published", metadata: ["version": "\(next.version)", "author": "\(author)", "reason": "\(reason)"])
        return next
    }

    /// Waits until the routing table is newer than `version`, or `timeout` passes.
    public func table(after version: UInt64, waitingUpTo timeout: Duration) async -> RoutingTable? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            let table = routingTable
            if table.version > version { return table }
            if clock.now >= deadline || Task.isCancelled { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Fails cell `cell` over to its first replica: promotes it, stops it
    /// waiting for a synchronous standby it no longer has, and publishes the
    /// routing change that moves the cell's services to it.
    public func failover(cell: CellID, author: String) async throws -> RoutingTable {
        let table = routingTable
        guard let route = table.cells[cell] else { throw OrderError(.notFound, "cell \(cell) is not in the routing table") }
        guard let storage = route.storage, let replica = storage.replicas.first else {
            throw OrderError.invalidRequest("cell \(cell) has no replica to promote")
        }
        guard let endpoint = PostgresEndpoint(url: replica) else { throw OrderError.invalidRequest("cell \(cell) replica URL \(replica) is invalid") }
        try await Self.promote(endpoint, logger: logger)
        return try await change(author: author, reason: "failover of cell \(cell): promoted \(replica), was \(storage.primary)") { table in
            try table.updatingCell(cell) { route in
                route.storage = CellStorageRoute(primary: replica, replicas: Array(storage.replicas.dropFirst()))
            }
        }
    }

    /// Promotes a PostgreSQL standby (idempotent) and makes it commit without a standby.
    static func promote(_ endpoint: PostgresEndpoint, logger: Logger) async throws {
        let configuration = PostgresClient.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.username, password: endpoint.password,
            database: endpoint.database, tls: .disable
        )
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let run = Task { await client.run() }
        defer { run.cancel() }
        try await withDeadline(.seconds(90)) {
            var inRecovery = false
            for try await value in try await client.query("SELECT pg_is_in_recovery()", logger: logger).decode(Bool.self) {
                inRecovery = value
            }
            if inRecovery {
                for try await promoted in try await client.query("SELECT pg_promote(true, 60)", logger: logger).decode(Bool.self) {
                    guard promoted else { throw OrderError(.internalError, "PostgreSQL did not finish promotion within 60 s") }
                }
            }
            // The promoted server inherited 'wait for one standby'; it has none until an operator builds one.
            try await client.query("ALTER SYSTEM SET synchronous_standby_names = ''", logger: logger)
            try await client.query("SELECT pg_reload_conf()", logger: logger)
        }
    }

    // MARK: - HTTP

    public func buildRouter() -> Router<BasicRequestContext> {
        let router = Router()
        let control = self
        router.get("/healthz") { _, _ in "ok" }
        router.get("/v1/routing") { request, _ -> Response in
            let after = request.uri.queryParameters.get("after").flatMap(UInt64.init) ?? 0
            let wait = min(Double(request.uri.queryParameters.get("wait").flatMap(Int.init) ?? 0), 30)
            guard let table = await control.table(after: after, waitingUpTo: .seconds(wait)) else {
                return Response(status: .notModified)
            }
            return try Self.json(table)
        }
        router.get("/v1/routing/history") { _, _ -> Response in
            let history = try await control.store.history()
            let items = history.map { ["version": "\($0.version)", "author": $0.author, "reason": $0.reason, "created_at": "\($0.createdAt)"] }
            return try Self.json(["releases": items])
        }
        router.post("/admin/cells/{cell_id}/failover") { request, context -> Response in
            try control.authorize(request)
            let cell = try Self.cellID(context)
            return try Self.json(try await control.failover(cell: cell, author: "admin api"))
        }
        router.put("/admin/cells/{cell_id}/blacklist") { request, context -> Response in
            try control.authorize(request)
            let cell = try Self.cellID(context)
            let body = try await request.body.collect(upTo: 16 * 1024)
            let fields = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
            let reason = fields["reason"] as? String ?? "blacklisted by an operator"
            let now = Timestamp(millisecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1000))
            var until: Timestamp?
            if let seconds = fields["expires_in_seconds"] as? Int {
                guard (1...31_536_000).contains(seconds) else {
                    throw HTTPError(.badRequest, message: "expires_in_seconds must be 1...31536000 (a year)")
                }
                until = now.adding(seconds: Int64(seconds))
            }
            return try Self.json(
                try await control.change(author: "admin api", reason: "blacklist cell \(cell): \(reason)") {
                    try $0.blacklisting(cell, BlacklistEntry(reason: reason, since: now, until: until))
                }
            )
        }
        router.delete("/admin/cells/{cell_id}/blacklist") { request, context -> Response in
            try control.authorize(request)
            let cell = try Self.cellID(context)
            return try Self.json(try await control.change(author: "admin api", reason: "unblacklist cell \(cell)") { try $0.unblacklisting(cell) })
        }
        return router
    }

    private func authorize(_ request: Request) throws {
        guard request.headers[.authorization] == "Bearer \(adminToken)" else {
            throw HTTPError(.unauthorized, message: "operator endpoints need 'Authorization: Bearer <admin token>'")
        }
    }

    private static func cellID(_ context: BasicRequestContext) throws -> CellID {
        guard let text = context.parameters.get("cell_id"), let number = Int(text), let cell = CellID(number) else {
            throw HTTPError(.badRequest, message: "cell_id must be a number 0...9999")
        }
        return cell
    }

    static func json<T: Encodable>(_ value: T) throws -> Response {
        let data = try JSONEncoder().encode(value)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
