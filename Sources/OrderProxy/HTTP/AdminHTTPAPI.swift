import CellRouting
import Foundation
import OrderHTTP
import Hummingbird
import OrderModel

/// The proxy's operator endpoints: its view of the cells (with its own
/// outlier ejections and drill faults), its routing status, drill fault
/// injection, and blacklisting (made through the control plane). Viewers
/// read; operators change.
struct AdminHTTPAPI: Sendable {
    let proxy: OrderProxy
    let drills: (any CellDrillControl)?
    let routingChanges: any RoutingChanges
    let tokens: OperatorTokens
    let routingStatus: RoutingStatus
    let clock: @Sendable () -> Timestamp

    func addRoutes(_ routes: inout RouteRegistrar<OrderRequestContext>) {
        var admin = routes.group("/admin")
        admin.on(.get, "/cells") { request, _ in
            try tokens.authorize(request, as: .viewer)
            return try HTTPBodies.json(try await cellList())
        }
        admin.on(.get, "/proxy") { request, _ in
            try tokens.authorize(request, as: .viewer)
            return try HTTPBodies.json(ProxyStatusView(proxy.routingTable, routingStatus.report()))
        }
        admin.on(.put, "/cells/{cell_id}/fault") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let cell = try cellID(context)
            let body = try await HTTPBodies.decode(FaultBody.self, from: request)
            try await setFault(try body.fault(), calls: try body.callCount(), on: cell, by: token)
            return try HTTPBodies.json(try await view(of: cell))
        }
        admin.on(.delete, "/cells/{cell_id}/fault") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let cell = try cellID(context)
            try await setFault(.none, calls: nil, on: cell, by: token)
            return try HTTPBodies.json(try await view(of: cell))
        }
        admin.on(.put, "/cells/{cell_id}/blacklist") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let cell = try cellID(context)
            let body = try await HTTPBodies.decodeIfPresent(BlacklistBody.self, from: request)
            let entry = try BlacklistEntry(requestedAt: clock(), reason: body?.reason, expiresInSeconds: body?.expiresInSeconds)
            let expected = try ExpectedVersion.of(request, body: body?.expectedVersion)
            try await updateRouting { try await $0.blacklist(cell, entry, expectedVersion: expected, by: token) }
            return try HTTPBodies.json(try await view(of: cell))
        }
        admin.on(.delete, "/cells/{cell_id}/blacklist") { request, context in
            let token = try tokens.authorize(request, as: .operator)
            let cell = try cellID(context)
            let body = try await HTTPBodies.decodeIfPresent(UnblacklistBody.self, from: request)
            try RequestLimits.checkText(body?.reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
            let expected = try ExpectedVersion.of(request, body: body?.expectedVersion)
            try await updateRouting { try await $0.unblacklist(cell, reason: body?.reason, expectedVersion: expected, by: token) }
            return try HTTPBodies.json(try await view(of: cell))
        }
    }

    private func cellID(_ context: OrderRequestContext) throws(OrderError) -> CellID {
        let text = context.parameters.get("cell_id") ?? ""
        guard let number = Int(text), let cell = CellID(number) else {
            throw OrderError.invalidRequest("cell_id must be a number 0...9999, got '\(text.prefix(16))'")
        }
        guard proxy.routingTable.cells[cell] != nil else {
            throw OrderError(.notFound, "cell \(cell) is not in the routing table")
        }
        return cell
    }

    private func setFault(_ fault: CellFault, calls: Int?, on cell: CellID, by token: OperatorToken) async throws {
        guard let drills else { throw OrderError.invalidRequest("this deployment does not support fault injection") }
        try await drills.setFault(fault, calls: calls, on: cell, by: token.name)
    }

    private func updateRouting(_ change: (any RoutingChanges) async throws -> RoutingTable) async throws {
        do {
            proxy.install(try await change(routingChanges))
        } catch let error as RoutingTableError {
            throw OrderError.invalidRequest(error.description)
        }
    }

    private func cellList() async throws -> CellListView {
        let table = proxy.routingTable
        var cells: [CellView] = []
        for cell in table.sortedCells { cells.append(try await view(of: cell.id, table: table)) }
        return CellListView(routingVersion: table.version, cells: cells)
    }

    private func view(of cell: CellID, table: RoutingTable? = nil) async throws(OrderError) -> CellView {
        let table = table ?? proxy.routingTable
        // A new release may have removed the cell since the request was checked.
        guard let route = table.cells[cell] else { throw OrderError(.notFound, "cell \(cell) is not in the routing table") }
        let now = clock()
        var fault = "unknown"
        if let drills, let current = try? await drills.fault(of: cell) {
            fault = FaultBody.describe(current)
        }
        return CellView(
            cellID: Int(cell.rawValue), partition: route.partition.rawValue, state: route.state.rawValue,
            weight: route.weight,
            versionLabel: route.versionLabel,
            health: table.health[cell]?.reason,
            blacklist: table.blacklist[cell].flatMap { entry in
                entry.isInForce(at: now)
                    ? BlacklistView(reason: entry.reason, since: entry.since.rfc3339, until: entry.until?.rfc3339) : nil
            },
            ejectedUntil: proxy.ejectedCells[cell]?.rfc3339,
            fault: fault,
            services: proxy.serviceInstances(of: cell).map(CellServiceView.init)
        )
    }
}

struct FaultBody: Decodable {
    var mode: String
    var latencyMilliseconds: Int?
    /// The fault applies to this many calls of each of the cell's service instances, then clears itself; absent: until cleared.
    var calls: Int?
    enum CodingKeys: String, CodingKey { case mode, latencyMilliseconds = "latency_ms", calls }

    func callCount() throws(OrderError) -> Int? {
        guard let calls else { return nil }
        guard (1...1_000_000).contains(calls) else { throw OrderError.invalidRequest("calls must be 1...1000000, got \(calls)") }
        guard mode != "none" else { throw OrderError.invalidRequest("calls applies to a fault, not to mode none") }
        return calls
    }

    func fault() throws(OrderError) -> CellFault {
        if let latency = latencyMilliseconds, !(0...60_000).contains(latency) {
            throw OrderError.invalidRequest("latency_ms must be 0...60000, got \(latency)")
        }
        switch mode {
        case "fail": return .fail
        case "none": return .none
        case "latency", "late_answer":
            guard let latency = latencyMilliseconds, (1...60_000).contains(latency) else {
                throw OrderError.invalidRequest("latency_ms must be 1...60000 for mode \(mode)")
            }
            return mode == "latency" ? .latency(milliseconds: latency) : .lateAnswer(milliseconds: latency)
        default:
            throw OrderError.invalidRequest("mode must be fail, latency, late_answer or none, got '\(mode.prefix(16))'")
        }
    }

    static func describe(_ fault: CellFault) -> String {
        switch fault {
        case .none: return "none"
        case .fail: return "fail"
        case .latency(let milliseconds): return "latency \(milliseconds) ms"
        case .lateAnswer(let milliseconds): return "late answer \(milliseconds) ms"
        }
    }
}

struct BlacklistBody: Decodable {
    var reason: String?
    var expiresInSeconds: Int64?
    var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case reason, expiresInSeconds = "expires_in_seconds", expectedVersion = "expected_version" }
}

struct UnblacklistBody: Decodable {
    var reason: String?
    var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case reason, expectedVersion = "expected_version" }
}

struct CellListView: Encodable {
    var routingVersion: UInt64
    var cells: [CellView]
    enum CodingKeys: String, CodingKey { case routingVersion = "routing_version", cells }
}

struct CellView: Encodable {
    var cellID: Int
    var partition: String
    var state: String
    var weight: Int
    var versionLabel: String?
    /// Why the health checker marked the cell down, if it did.
    var health: String?
    var blacklist: BlacklistView?
    var ejectedUntil: String?
    var fault: String
    /// The cell's service instances as this proxy sees them (empty when embedded: the cell runs in process).
    var services: [CellServiceView]
    enum CodingKeys: String, CodingKey {
        case cellID = "cell_id", partition, state, weight, versionLabel = "version_label", health, blacklist
        case ejectedUntil = "ejected_until", fault, services
    }
}

/// One cell service instance in `/admin/cells`.
struct CellServiceView: Encodable {
    var endpoint: String
    var active: Bool
    var passedOver: Bool
    var lastFailure: String?
    var secondsSinceLastFailure: Double?
    enum CodingKeys: String, CodingKey {
        case endpoint, active, passedOver = "passed_over", lastFailure = "last_failure", secondsSinceLastFailure = "seconds_since_last_failure"
    }

    init(_ status: CellServiceInstanceStatus) {
        endpoint = status.endpoint
        active = status.active
        passedOver = status.passedOver
        lastFailure = status.lastFailure
        secondsSinceLastFailure = status.millisecondsSinceLastFailure.map { Double($0) / 1000 }
    }
}

/// What `/admin/proxy` reports: the routing release this proxy runs on and how fresh it is.
struct ProxyStatusView: Encodable {
    var routingVersion: UInt64
    var routingSource: String
    var releaseReceivedAt: String?
    var lastControlContact: String?
    var secondsSinceControlContact: Double?
    var policy: TrafficPolicy
    enum CodingKeys: String, CodingKey {
        case routingVersion = "routing_version", routingSource = "routing_source", releaseReceivedAt = "release_received_at"
        case lastControlContact = "last_control_contact", secondsSinceControlContact = "seconds_since_control_contact", policy
    }

    init(_ table: RoutingTable, _ report: RoutingStatus.Report) {
        func text(_ date: Date?) -> String? {
            date.map { Timestamp(millisecondsSinceEpoch: Int64($0.timeIntervalSince1970 * 1000)).rfc3339 }
        }
        routingVersion = table.version
        routingSource = report.source.rawValue
        releaseReceivedAt = text(report.releaseReceivedAt)
        lastControlContact = text(report.lastContact)
        secondsSinceControlContact = report.secondsSinceContact.map { ($0 * 10).rounded() / 10 }
        policy = table.policy
    }
}

struct BlacklistView: Encodable {
    var reason: String
    var since: String
    var until: String?
}
