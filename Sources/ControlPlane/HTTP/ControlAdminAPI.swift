import CellRouting
import Foundation
import Hummingbird
import Logging
import OrderCellPlatform
import OrderHTTP
import OrderModel

/// The control plane over HTTP: the routing long poll followers use
/// (`/v1/routing`), and the operator API (`/admin/…`): cells, partitions,
/// merchant rules, config, releases with diffs, rollback. Viewers read;
/// operators change. Every change takes an optional `expected_version`
/// (or `If-Match`) and a `reason`, and is recorded with the token's name.
public struct ControlAdminAPI: Sendable {
    public let control: ControlPlane
    public let tokens: OperatorTokens
    /// Mounted under this path (embedded: `/control`; cluster: empty).
    public let pathPrefix: String
    /// Cell failover and switchover (Patroni's) are offered when the cells' storage is followed in Patroni.
    public let patroni: PatroniFollower?
    /// Whether the followers' long poll (`/v1/routing`) is served: on the
    /// control plane's own (internal) port in a cluster; not on the public
    /// port of the embedded deployment, whose proxy follows in process.
    public let servesFollowers: Bool
    /// Index slot moves are offered when there is a mover (it calls the cells); nil: not offered.
    public let indexSlotMover: IndexSlotMover?
    /// Seals the secrets of new access keys; nil: this deployment has no credential key, and makes none.
    public let credentials: CredentialSealer?
    /// Seals merchants' notification secrets: a key of its own (the notification key), which the cells'
    /// notifiers hold to open them; they never hold the credential key. nil: no notify endpoints are made.
    public let notificationSealer: CredentialSealer?
    /// The cells' notifiers, for the feed overview and redeliveries; nil: not offered.
    public let notifiers: (any CellNotifierOperations)?
    private let clock: @Sendable () -> Timestamp
    private let logger: Logger

    public init(
        control: ControlPlane, tokens: OperatorTokens, pathPrefix: String = "", patroni: PatroniFollower? = nil,
        servesFollowers: Bool = true, indexSlotMover: IndexSlotMover? = nil, credentials: CredentialSealer? = nil,
        notificationSealer: CredentialSealer? = nil, notifiers: (any CellNotifierOperations)? = nil,
        clock: @escaping @Sendable () -> Timestamp, logger: Logger
    ) {
        self.notificationSealer = notificationSealer
        self.notifiers = notifiers
        self.indexSlotMover = indexSlotMover
        self.credentials = credentials
        self.control = control
        self.tokens = tokens
        self.pathPrefix = pathPrefix
        self.patroni = patroni
        self.servesFollowers = servesFollowers
        self.clock = clock
        self.logger = logger
    }

    /// A router serving only the control plane (cluster mode).
    public func buildRouter() -> Router<OrderRequestContext> {
        // HEAD is answered wherever GET is, with the GET answer's head (RFC 9110 §9.1).
        let router = Router(context: OrderRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: ProblemMiddleware(logger: logger))
        router.add(middleware: OperatorAuthenticationLimit(clock: clock))
        var registrar = RouteRegistrar(router: router)
        registrar.on(.get, pathPrefix + "/healthz") { _, _ in try HTTPBodies.json(["status": "ok"]) }
        addRoutes(&registrar)
        registrar.refuseOtherMethods()
        return router
    }

    public func addRoutes(_ routes: inout RouteRegistrar<OrderRequestContext>) {
        let control = self.control
        let tokens = self.tokens
        let p = pathPrefix
        if servesFollowers {
            routes.on(.get, p + "/v1/routing") { request, _ in
                // The table names every cell's storage servers: followers show a viewer (or operator) token.
                try tokens.authorize(request, as: .viewer)
                // A follower of another epoch (a rebuilt control database) gets the current release at once.
                let epoch = request.uri.queryParameters.get("epoch").map { String($0) }
                let current = control.routingTable
                if let epoch, epoch != current.epoch { return try HTTPBodies.json(current) }
                let after = request.uri.queryParameters.get("after").flatMap(UInt64.init) ?? 0
                let wait = min(max(Double(request.uri.queryParameters.get("wait").flatMap(Int.init) ?? 0), 0), 30)
                guard let table = await control.table(after: after, waitingUpTo: .seconds(wait)) else {
                    return Response(status: .notModified)
                }
                return try HTTPBodies.json(table)
            }
        }

        // The operator API: one Hummingbird router group under `/admin`.
        var admin = routes.group(p + "/admin")

        // MARK: Reading (viewer)
        admin.on(.get, "/routing") { request, _ in
            try tokens.authorize(request, as: .viewer)
            return try HTTPBodies.json(control.routingTable.withSealedSecretsHidden)
        }
        admin.on(.get, "/cells") { request, _ in
            try tokens.authorize(request, as: .viewer)
            let table = control.routingTable
            return try HTTPBodies.json(ControlCellListView(routingVersion: table.version, cells: table.sortedCells.map { ControlCellView($0, table) }))
        }
        admin.on(.get, "/partitions") { request, _ in
            try tokens.authorize(request, as: .viewer)
            return try HTTPBodies.json(PartitionListView(control.routingTable))
        }
        admin.on(.get, "/config") { request, _ in
            try tokens.authorize(request, as: .viewer)
            let table = control.routingTable
            return try HTTPBodies.json(ConfigView(routingVersion: table.version, policy: table.policy))
        }
        admin.on(.get, "/releases") { request, _ in
            try tokens.authorize(request, as: .viewer)
            let limit = try request.uri.queryParameters.get("limit").map { text in
                guard let limit = Int(text), (1...1000).contains(limit) else {
                    throw OrderError.invalidRequest("limit must be a whole number 1...1000, got '\(text.prefix(24))'")
                }
                return limit
            } ?? 50
            return try HTTPBodies.json(ReleaseListView(releases: try await control.history(limit: limit).map(ReleaseSummaryView.init)))
        }
        admin.on(.get, "/releases/{version}") { request, context in
            try tokens.authorize(request, as: .viewer)
            let (release, changes) = try await control.release(try Self.version(context))
            return try HTTPBodies.json(ReleaseView(release: release, changes: changes))
        }

        // MARK: Changing (operator)
        admin.on(.post, "/cells") { request, _ in
            let token = try tokens.authorize(request, as: .operator)
            let body = try await HTTPBodies.decode(AddCellRequest.self, from: request)
            let route = try body.route()
            return try await publish(request, token, body.reason, body.expectedVersion, "add cell \(route.id) to \(route.partition)") {
                try $0.addingCell(route)
            }
        }
        admin.on(.patch, "/cells/{cell_id}") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let cell = try Self.cellID(context)
            let body = try await HTTPBodies.decode(CellPatchRequest.self, from: request)
            let state = try body.state.map(Self.cellState)
            let endpoints = try OperatorInput.endpoints(body.endpoints)
            let partition = try body.partition.map(Self.partitionName)
            if let label = body.versionLabel { try RequestLimits.checkIdentifier(label, field: "version_label", length: 1...64) }
            return try await publish(request, token, body.reason, body.expectedVersion, "change cell \(cell): \(body.summary)") { table in
                try table.updatingCell(cell) { route in
                    if let partition { route.partition = partition }
                    if let state { route.state = state }
                    if let weight = body.weight { route.weight = weight }
                    if let endpoints { route.endpoints = endpoints }
                    if let label = body.versionLabel { route.versionLabel = label }
                }
            }
        }
        admin.on(.put, "/cells/{cell_id}/blacklist") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let cell = try Self.cellID(context)
            let body = try await HTTPBodies.decodeIfPresent(BlacklistRequest.self, from: request)
            let entry = try BlacklistEntry(requestedAt: clock(), reason: body?.reason, expiresInSeconds: body?.expiresInSeconds)
            return try await publish(request, token, entry.reason, body?.expectedVersion, "blacklist cell \(cell)") {
                try $0.blacklisting(cell, entry)
            }
        }
        admin.on(.delete, "/cells/{cell_id}/blacklist") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let cell = try Self.cellID(context)
            let body = try await HTTPBodies.decodeIfPresent(ReasonRequest.self, from: request)
            return try await publish(request, token, body?.reason, body?.expectedVersion, "unblacklist cell \(cell)") {
                try $0.unblacklisting(cell)
            }
        }
        if let patroni {
            // Patroni moves the cell's primary; the release that follows carries the operator's name.
            for (path, action) in [("failover", "failover"), ("switchover", "switchover")] {
                admin.on(.post, "/cells/{cell_id}/\(path)") { request, context in
                    let token = try tokens.authorize(request, as: .operator)
                    let cell = try Self.cellID(context)
                    let before = control.routingTable
                    let table: RoutingTable
                    do {
                        table = action == "failover"
                            ? try await patroni.failover(cell, candidate: nil, author: token.name)
                            : try await patroni.switchover(cell, candidate: nil, author: token.name)
                    } catch let error as OrderError {
                        throw error
                    } catch {
                        // etcd or Patroni refused or did not answer: say so, not "internal error".
                        throw OrderError(.cellUnavailable, "\(action) of cell \(cell) failed: \(error)", retryAfterSeconds: 5)
                    }
                    return try HTTPBodies.json(ChangeResultView(table: table, author: token.name, changes: try RoutingDiff.between(before, table)))
                }
            }
        }
        if let indexSlotMover {
            admin.on(.post, "/index-slots/move") { request, _ in
                let token = try tokens.authorize(request, as: .operator)
                let body = try await HTTPBodies.decode(IndexSlotMoveRequest.self, from: request)
                let (slots, target) = try body.validated()
                try RequestLimits.checkText(body.reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
                let expected = try ExpectedVersion.of(request, body: body.expectedVersion)
                let moved = try await indexSlotMover.move(
                    slots, to: target, expectedVersion: expected, author: token.name, reason: body.reason ?? "no reason given"
                )
                return try HTTPBodies.json(moved)
            }
        }
        admin.on(.put, "/partitions/{partition}") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let name = try Self.partitionName(try Self.parameter("partition", of: context))
            let body = try await HTTPBodies.decode(PartitionRequest.self, from: request)
            guard let kind = PartitionKind(rawValue: body.kind) else {
                throw OrderError.invalidRequest("kind must be vip, normal, canary or cold, got '\(body.kind.prefix(16))'")
            }
            let spill = try body.spillTo.map(Self.partitionName)
            return try await publish(request, token, body.reason, body.expectedVersion, "set partition \(name) (\(kind.rawValue))") {
                try $0.settingPartition(Partition(name: name, kind: kind, spillTo: spill))
            }
        }
        admin.on(.put, "/merchants/{merchant_id}/partition") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let merchant = try Self.parameter("merchant_id", of: context)
            try RequestLimits.checkIdentifier(merchant, field: "merchant_id", length: RequestLimits.merchantIDLength)
            let body = try await HTTPBodies.decode(MerchantPartitionRequest.self, from: request)
            let partition = try Self.partitionName(body.partition)
            return try await publish(request, token, body.reason, body.expectedVersion, "pin merchant \(merchant) to \(partition)") {
                try $0.pinningMerchant(merchant, to: partition)
            }
        }
        admin.on(.delete, "/merchants/{merchant_id}/partition") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let merchant = try Self.parameter("merchant_id", of: context)
            try RequestLimits.checkIdentifier(merchant, field: "merchant_id", length: RequestLimits.merchantIDLength)
            let body = try await HTTPBodies.decodeIfPresent(ReasonRequest.self, from: request)
            return try await publish(request, token, body?.reason, body?.expectedVersion, "unpin merchant \(merchant)") {
                try $0.pinningMerchant(merchant, to: nil)
            }
        }
        admin.on(.put, "/config") { request, _ in
            let token = try tokens.authorize(request, as: .operator)
            let body = try await HTTPBodies.decode(ConfigRequest.self, from: request)
            let policy = try body.validated()
            return try await publish(request, token, body.reason, body.expectedVersion, "set config") { try $0.settingPolicy(policy) }
        }
        addAccessKeyRoutes(&admin)
        addNotifyEndpointRoutes(&admin)
        addFeedRoutes(&admin)
        admin.on(.post, "/releases/{version}/rollback") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let version = try Self.version(context)
            let body = try await HTTPBodies.decodeIfPresent(ReasonRequest.self, from: request)
            let reason = body?.reason ?? "no reason given"
            try RequestLimits.checkText(reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
            let expected = try ExpectedVersion.of(request, body: body?.expectedVersion)
            let before = control.routingTable
            let table = try await control.rollback(to: version, expectedVersion: expected, author: token.name, reason: reason)
            return try HTTPBodies.json(ChangeResultView(table: table, author: token.name, changes: try RoutingDiff.between(before, table)))
        }
    }

    // MARK: - Access keys of the public API

    /// Access keys (docs/security.md): made, rotated and revoked as releases (``AccessKeyIssuer``). A secret
    /// is shown once, in the answer that makes it.
    private func addAccessKeyRoutes(_ admin: inout RouteRegistrar<OrderRequestContext>) {
        let control = self.control
        let tokens = self.tokens
        let clock = self.clock
        let issuer = credentials.map { AccessKeyIssuer(control: control, sealer: $0, clock: clock) }
        @Sendable func keys() throws(OrderError) -> AccessKeyIssuer {
            guard let issuer else {
                throw OrderError.invalidRequest("this control plane has no credential key (--credential-key-file): it cannot make access keys")
            }
            return issuer
        }
        admin.on(.get, "/access-keys") { request, _ in
            try tokens.authorize(request, as: .viewer)
            let merchant: String? = request.uri.queryParameters.get("merchant_id").map { String($0) }
            let now = clock()
            let listed = control.routingTable.accessKeys.values.filter { merchant == nil || $0.merchantID == merchant }
                .sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
            return try HTTPBodies.json(AccessKeyListView(accessKeys: listed.map { AccessKeyView($0, at: now) }))
        }
        admin.on(.post, "/access-keys") { request, _ in
            let token = try tokens.authorize(request, as: .operator)
            let issuer = try keys()
            let body = try await HTTPBodies.decode(AccessKeyCreateRequest.self, from: request)
            try RequestLimits.checkText(body.reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
            guard let role = CallerRole(rawValue: body.role) else {
                throw OrderError.invalidRequest("role must be merchant or payment_service, got '\(body.role.prefix(32))'")
            }
            if let merchant = body.merchantID {
                try RequestLimits.checkIdentifier(merchant, field: "merchant_id", length: RequestLimits.merchantIDLength)
            }
            let expected = try ExpectedVersion.of(request, body: body.expectedVersion)
            let made = try await issuer.create(role, merchantID: body.merchantID, author: token.name, reason: body.reason, expectedVersion: expected)
            return try HTTPBodies.json(
                AccessKeyIssuedView(
                    key: AccessKeyView(made.key, at: clock()), secret: made.secret, replaces: nil, version: made.table.version, author: token.name
                ),
                status: .created
            )
        }
        admin.on(.post, "/access-keys/{key_id}/rotate") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let issuer = try keys()
            let id = try Self.parameter("key_id", of: context)
            let body = try await HTTPBodies.decodeIfPresent(AccessKeyRotateRequest.self, from: request)
            try RequestLimits.checkText(body?.reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
            let expected = try ExpectedVersion.of(request, body: body?.expectedVersion)
            let made = try await issuer.rotate(
                id, overlapSeconds: body?.overlapSeconds ?? 86_400, author: token.name, reason: body?.reason, expectedVersion: expected
            )
            let now = clock()
            return try HTTPBodies.json(
                AccessKeyIssuedView(
                    key: AccessKeyView(made.key, at: now), secret: made.secret, replaces: AccessKeyView(made.replaced, at: now),
                    version: made.table.version, author: token.name
                ),
                status: .created
            )
        }
        admin.on(.delete, "/access-keys/{key_id}") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let issuer = try keys()
            let id = try Self.parameter("key_id", of: context)
            let body = try await HTTPBodies.decodeIfPresent(ReasonRequest.self, from: request)
            try RequestLimits.checkText(body?.reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
            let expected = try ExpectedVersion.of(request, body: body?.expectedVersion)
            let revoked = try await issuer.revoke(id, author: token.name, reason: body?.reason, expectedVersion: expected)
            return try HTTPBodies.json(AccessKeyChangeView(key: AccessKeyView(revoked.key, at: clock()), version: revoked.table.version, author: token.name))
        }
    }

    // MARK: - Merchants' notify endpoints

    /// Notify endpoints (docs/events.md): set and removed as releases (``NotifyEndpointRegistry``). A signing
    /// secret is shown once, in the answer that makes it.
    private func addNotifyEndpointRoutes(_ admin: inout RouteRegistrar<OrderRequestContext>) {
        let control = self.control
        let tokens = self.tokens
        let registry = notificationSealer.map { NotifyEndpointRegistry(control: control, sealer: $0, clock: clock) }
        admin.on(.get, "/notify-endpoints") { request, _ in
            try tokens.authorize(request, as: .viewer)
            let endpoints = control.routingTable.notifyEndpoints.values.sorted { $0.merchantID < $1.merchantID }
            return try HTTPBodies.json(NotifyEndpointListView(notifyEndpoints: endpoints.map(NotifyEndpointView.init)))
        }
        admin.on(.get, "/merchants/{merchant_id}/notify") { request, context in
            try tokens.authorize(request, as: .viewer)
            let merchant = try Self.merchantID(context)
            guard let endpoint = control.routingTable.notifyEndpoints[merchant] else {
                throw OrderError(.notFound, "merchant \(merchant) has no notify endpoint")
            }
            return try HTTPBodies.json(NotifyEndpointView(endpoint))
        }
        admin.on(.put, "/merchants/{merchant_id}/notify") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            guard let registry else {
                throw OrderError.invalidRequest("this control plane has no notification key (--notification-key-file): it cannot seal notification secrets")
            }
            let merchant = try Self.merchantID(context)
            let body = try await HTTPBodies.decode(NotifyEndpointSetRequest.self, from: request)
            try RequestLimits.checkText(body.reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
            let expected = try ExpectedVersion.of(request, body: body.expectedVersion)
            let set = try await registry.set(
                merchantID: merchant, url: body.url, allowPrivateNetwork: body.allowPrivateNetwork ?? false, rotateSecret: body.rotateSecret ?? false,
                author: token.name, reason: body.reason, expectedVersion: expected
            )
            return try HTTPBodies.json(
                NotifyEndpointSetView(endpoint: NotifyEndpointView(set.endpoint), secret: set.secret, version: set.table.version, author: token.name)
            )
        }
        admin.on(.delete, "/merchants/{merchant_id}/notify") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let merchant = try Self.merchantID(context)
            let body = try await HTTPBodies.decodeIfPresent(ReasonRequest.self, from: request)
            try RequestLimits.checkText(body?.reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
            let expected = try ExpectedVersion.of(request, body: body?.expectedVersion)
            let before = control.routingTable
            let table = try await control.change(
                expectedVersion: expected, author: token.name,
                reason: "remove the notify endpoint of merchant \(merchant): \(body?.reason ?? "no reason given")"
            ) { try $0.removingNotifyEndpoint(of: merchant) }
            return try HTTPBodies.json(ChangeResultView(table: table, author: token.name, changes: try RoutingDiff.between(before, table)))
        }
    }

    /// The feed's readers and the notifications (docs/events.md): every cell's notifier at a glance, one
    /// cell's notifications by status, an operator's redelivery of dead ones.
    private func addFeedRoutes(_ admin: inout RouteRegistrar<OrderRequestContext>) {
        let (control, tokens, clock, logger) = (self.control, self.tokens, self.clock, self.logger)
        let notifiers = self.notifiers
        @Sendable func operations() throws(OrderError) -> any CellNotifierOperations {
            guard let notifiers else { throw OrderError(.notFound, "this control plane does not reach the cells' notifiers") }
            return notifiers
        }
        @Sendable func route(_ context: OrderRequestContext) throws(OrderError) -> CellRoute {
            let cell = try Self.cellID(context)
            guard let route = control.routingTable.cells[cell] else { throw OrderError(.notFound, "cell \(cell) is not in the routing table") }
            return route
        }
        admin.on(.get, "/feed") { request, _ in
            try tokens.authorize(request, as: .viewer)
            let notifiers = try operations()
            let cells = control.routingTable.sortedCells
            // Each cell answers for itself, at once: one that is down is shown as such, and holds up no other.
            let views = await withTaskGroup(of: CellFeedView.self) { group in
                for cell in cells {
                    group.addTask {
                        do {
                            let page = try await withDeadline(.seconds(3)) { try await notifiers.notifierStatus(of: cell, nil, after: nil, limit: 1) }
                            return CellFeedView(cell: cell.id, page: page)
                        } catch {
                            return CellFeedView(cell: cell.id, error: "\(error)".prefix(300).description)
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }.sorted { $0.cellID < $1.cellID }
            }
            return try HTTPBodies.json(FeedOverviewView(asOf: clock().rfc3339, cells: views))
        }
        admin.on(.get, "/cells/{cell_id}/notifications") { request, context in
            try tokens.authorize(request, as: .viewer)
            let notifiers = try operations()
            let cell = try route(context)
            let query = request.uri.queryParameters
            let statusText = query.get("status").map { String($0) } ?? "dead"
            guard let status = NotificationStatus(rawValue: statusText) else {
                throw OrderError.invalidRequest("status must be pending, delivered or dead, not '\(statusText.prefix(16))'")
            }
            let limit = try query.get("limit").map { text in
                guard let limit = Int(text), (1...1000).contains(limit) else {
                    throw OrderError.invalidRequest("limit must be a whole number 1...1000, got '\(text.prefix(24))'")
                }
                return limit
            } ?? 100
            let after = query.get("after").map { String($0) }
            try RequestLimits.checkText(after, field: "after", maxBytes: 64)
            let page = try await notifiers.notifierStatus(of: cell, status, after: after, limit: limit)
            return try HTTPBodies.json(
                NotificationListView(
                    cellID: Int(cell.id.rawValue), notifications: page.notifications.map(NotificationRecordView.init),
                    nextAfter: page.notifications.count == limit ? page.notifications.last?.eventID : nil
                )
            )
        }
        admin.on(.post, "/cells/{cell_id}/notifications/redeliver") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let notifiers = try operations()
            let cell = try route(context)
            let body = try await HTTPBodies.decodeIfPresent(RedeliverRequest.self, from: request)
            try RequestLimits.checkText(body?.reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
            if let ids = body?.eventIDs {
                guard (1...1000).contains(ids.count) else { throw OrderError.invalidRequest("event_ids names 1...1000 events, or is left out for all dead ones") }
                for id in ids { try RequestLimits.checkText(id, field: "event_id", maxBytes: 64) }
            }
            let count = try await notifiers.redeliverNotifications(in: cell, body?.eventIDs, by: token.name)
            logger.notice(
                "dead notifications redelivered",
                metadata: ["cell": "\(cell.id)", "count": "\(count)", "author": "\(token.name)", "reason": "\(body?.reason ?? "no reason given")"]
            )
            return try HTTPBodies.json(RedeliverView(cellID: Int(cell.id.rawValue), redelivered: count, author: token.name))
        }
    }

    static func merchantID(_ context: OrderRequestContext) throws(OrderError) -> String {
        let merchant = try parameter("merchant_id", of: context)
        try RequestLimits.checkIdentifier(merchant, field: "merchant_id", length: RequestLimits.merchantIDLength)
        return merchant
    }

    /// Publishes one operator change and answers the new release with its diff.
    private func publish(
        _ request: Request, _ token: OperatorToken, _ reason: String?, _ bodyVersion: UInt64?, _ action: String,
        _ change: (RoutingTable) throws -> RoutingTable
    ) async throws -> Response {
        try RequestLimits.checkText(reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
        let expected = try ExpectedVersion.of(request, body: bodyVersion)
        let before = control.routingTable
        let table = try await control.change(
            expectedVersion: expected, author: token.name, reason: "\(action): \(reason ?? "no reason given")", change
        )
        return try HTTPBodies.json(ChangeResultView(table: table, author: token.name, changes: try RoutingDiff.between(before, table)))
    }

    static func cellID(_ context: OrderRequestContext) throws(OrderError) -> CellID {
        let text = context.parameters.get("cell_id") ?? ""
        guard let number = Int(text), let cell = CellID(number) else {
            throw OrderError.invalidRequest("cell_id must be a number 0...9999, got '\(text.prefix(16))'")
        }
        return cell
    }

    static func version(_ context: OrderRequestContext) throws(OrderError) -> UInt64 {
        let text = context.parameters.get("version") ?? ""
        guard let version = UInt64(text), version > 0 else { throw OrderError.invalidRequest("version must be a release number, got '\(text.prefix(16))'") }
        return version
    }

    static func partitionName(_ text: String) throws(OrderError) -> PartitionName {
        try RequestLimits.checkIdentifier(text, field: "partition", length: 1...32)
        return PartitionName(text)
    }

    /// A path parameter, percent-decoded: a client that encodes `|` or `@` in a merchant id names the same merchant.
    static func parameter(_ name: String, of context: OrderRequestContext) throws(OrderError) -> String {
        let raw = context.parameters.get(name) ?? ""
        guard let decoded = raw.removingPercentEncoding else {
            throw OrderError.invalidRequest("\(name) is not validly percent-encoded: '\(raw.prefix(32))'")
        }
        return decoded
    }

    static func cellState(_ text: String) throws(OrderError) -> CellState {
        // ASCII letters only change case: "actıve" (dotless i) is not ACTIVE.
        let upper = String(String.UnicodeScalarView(text.unicodeScalars.map { ("a"..."z").contains($0) ? Unicode.Scalar($0.value - 32)! : $0 }))
        guard let state = CellState(rawValue: upper) else {
            throw OrderError.invalidRequest("state must be one of \(CellState.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text.prefix(16))'")
        }
        return state
    }
}
