import AsyncHTTPClient
import CellRouting
import Foundation
import NIOCore
import NIOHTTP1
import OrderModel

/// The one client of the control plane's admin API: `ordercell admin`, and
/// proxies forwarding an operator's change with the operator's own token.
///
/// It sends the same request types the control plane decodes
/// (``AddCellRequest``, ``BlacklistRequest``, …) and decodes the same views
/// it encodes, so the two sides cannot drift apart field by field. A refusal
/// comes back as the control plane's typed ``OrderError`` (its problem's
/// `code` and `detail`).
public struct ControlAdminClient: Sendable {
    public var controlURL: String
    public var token: String
    /// The client that calls `controlURL` (``TrustedHTTPClients``).
    public var http: HTTPClient

    public init(controlURL: String, token: String, http: HTTPClient = .shared) {
        self.controlURL = controlURL
        self.token = token
        self.http = http
    }

    // MARK: Reading (viewer)

    public func routing() async throws -> RoutingTable { try await get("/admin/routing") }
    public func cells() async throws -> ControlCellListView { try await get("/admin/cells") }
    public func partitions() async throws -> PartitionListView { try await get("/admin/partitions") }
    public func config() async throws -> ConfigView { try await get("/admin/config") }
    public func releases(limit: Int = 50) async throws -> ReleaseListView { try await get("/admin/releases?limit=\(limit)") }
    public func release(_ version: UInt64) async throws -> ReleaseView { try await get("/admin/releases/\(version)") }

    // MARK: Changing (operator); each answers the release it published

    public func addCell(_ request: AddCellRequest) async throws -> ChangeResultView {
        try await change(.POST, "/admin/cells", request)
    }

    public func updateCell(_ cell: CellID, _ request: CellPatchRequest) async throws -> ChangeResultView {
        try await change(.PATCH, "/admin/cells/\(cell)", request)
    }

    public func blacklist(_ cell: CellID, _ request: BlacklistRequest) async throws -> ChangeResultView {
        try await change(.PUT, "/admin/cells/\(cell)/blacklist", request)
    }

    public func unblacklist(_ cell: CellID, _ request: ReasonRequest) async throws -> ChangeResultView {
        try await change(.DELETE, "/admin/cells/\(cell)/blacklist", request)
    }

    /// A forced failover of the cell's primary to its synchronous standby (cluster, Patroni's).
    public func failover(_ cell: CellID) async throws -> ChangeResultView {
        try await decode(try await send(.POST, "/admin/cells/\(cell)/failover", body: nil, timeout: .seconds(120)))
    }

    /// A planned switchover of the cell's primary to its synchronous standby (cluster, Patroni's): no acknowledged commit lost.
    public func switchover(_ cell: CellID) async throws -> ChangeResultView {
        try await decode(try await send(.POST, "/admin/cells/\(cell)/switchover", body: nil, timeout: .seconds(120)))
    }

    public func setPartition(_ name: String, _ request: PartitionRequest) async throws -> ChangeResultView {
        try await change(.PUT, "/admin/partitions/\(Self.pathSegment(name))", request)
    }

    public func pinMerchant(_ merchant: String, _ request: MerchantPartitionRequest) async throws -> ChangeResultView {
        try await change(.PUT, "/admin/merchants/\(Self.pathSegment(merchant))/partition", request)
    }

    public func unpinMerchant(_ merchant: String, _ request: ReasonRequest) async throws -> ChangeResultView {
        try await change(.DELETE, "/admin/merchants/\(Self.pathSegment(merchant))/partition", request)
    }

    public func setConfig(_ request: ConfigRequest) async throws -> ChangeResultView {
        try await change(.PUT, "/admin/config", request)
    }

    /// Moves index slots to another cell; the answer comes once the move is done (or refused).
    public func moveIndexSlots(_ request: IndexSlotMoveRequest) async throws -> IndexSlotMoveView {
        try await decode(try await send(.POST, "/admin/index-slots/move", body: try JSONEncoder().encode(request), timeout: .seconds(600)))
    }

    // MARK: Access keys of the public API (docs/security.md)

    public func accessKeys(merchant: String? = nil) async throws -> AccessKeyListView {
        try await get("/admin/access-keys" + (merchant.map { "?merchant_id=\(Self.pathSegment($0))" } ?? ""))
    }

    /// A new key; its secret is in the answer, this once.
    public func createAccessKey(_ request: AccessKeyCreateRequest) async throws -> AccessKeyIssuedView {
        try await decode(try await send(.POST, "/admin/access-keys", body: try JSONEncoder().encode(request)))
    }

    /// A successor of key `id`; the old key stays accepted for the overlap.
    public func rotateAccessKey(_ id: String, _ request: AccessKeyRotateRequest) async throws -> AccessKeyIssuedView {
        try await decode(try await send(.POST, "/admin/access-keys/\(Self.pathSegment(id))/rotate", body: try JSONEncoder().encode(request)))
    }

    public func revokeAccessKey(_ id: String, _ request: ReasonRequest) async throws -> AccessKeyChangeView {
        try await decode(try await send(.DELETE, "/admin/access-keys/\(Self.pathSegment(id))", body: try JSONEncoder().encode(request)))
    }

    // MARK: Merchants' notify endpoints (docs/events.md)

    public func notifyEndpoints() async throws -> NotifyEndpointListView { try await get("/admin/notify-endpoints") }

    public func notifyEndpoint(of merchant: String) async throws -> NotifyEndpointView {
        try await get("/admin/merchants/\(Self.pathSegment(merchant))/notify")
    }

    /// Sets the endpoint; a new signing secret is in the answer, this once.
    public func setNotifyEndpoint(of merchant: String, _ request: NotifyEndpointSetRequest) async throws -> NotifyEndpointSetView {
        try await decode(try await send(.PUT, "/admin/merchants/\(Self.pathSegment(merchant))/notify", body: try JSONEncoder().encode(request)))
    }

    public func removeNotifyEndpoint(of merchant: String, _ request: ReasonRequest) async throws -> ChangeResultView {
        try await change(.DELETE, "/admin/merchants/\(Self.pathSegment(merchant))/notify", request)
    }

    // MARK: The feed and the cells' notifiers (docs/events.md)

    public func feed() async throws -> FeedOverviewView { try await get("/admin/feed") }

    public func notifications(in cell: CellID, status: NotificationStatus, after: String? = nil, limit: Int = 100) async throws -> NotificationListView {
        var path = "/admin/cells/\(cell.rawValue)/notifications?status=\(status.rawValue)&limit=\(limit)"
        if let after { path += "&after=\(Self.pathSegment(after))" }
        return try await get(path)
    }

    public func redeliverNotifications(in cell: CellID, _ request: RedeliverRequest) async throws -> RedeliverView {
        try await decode(try await send(.POST, "/admin/cells/\(cell.rawValue)/notifications/redeliver", body: try JSONEncoder().encode(request)))
    }

    public func rollback(to version: UInt64, _ request: ReasonRequest) async throws -> ChangeResultView {
        try await change(.POST, "/admin/releases/\(version)/rollback", request)
    }

    // MARK: Transport

    private func get<Answer: Decodable>(_ path: String) async throws -> Answer {
        try await decode(try await send(.GET, path, body: nil))
    }

    private func change(_ method: HTTPMethod, _ path: String, _ request: some Encodable) async throws -> ChangeResultView {
        try await decode(try await send(method, path, body: try JSONEncoder().encode(request)))
    }

    private func decode<Answer: Decodable>(_ data: Data) async throws -> Answer {
        do {
            return try JSONDecoder().decode(Answer.self, from: data)
        } catch {
            throw OrderError(.internalError, "the control plane's answer is not a \(Answer.self): \(error)")
        }
    }

    private func send(_ method: HTTPMethod, _ path: String, body: Data?, timeout: TimeAmount = .seconds(30)) async throws -> Data {
        var request = HTTPClientRequest(url: controlURL + path)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await http.execute(request, timeout: timeout)
        let data = Data((try await response.body.collect(upTo: 16 << 20)).readableBytesView)
        guard (200..<300).contains(response.status.code) else {
            let problem = try? JSONDecoder().decode(ProblemBody.self, from: data)
            let code = problem.flatMap { OrderErrorCode(rawValue: $0.code) } ?? .internalError
            throw OrderError(code, problem?.detail ?? "\(response.status) \(String(decoding: data.prefix(512), as: UTF8.self))")
        }
        return data
    }

    /// The fields of an `application/problem+json` answer the client reads.
    private struct ProblemBody: Decodable {
        var code: String
        var detail: String?
    }

    /// Merchant ids and partition names are checked identifiers on the server; escaped here all the same.
    static func pathSegment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? text
    }
}
