import CellRouting
import Hummingbird
import OrderModel

/// Operator endpoints: list cells, inject drill faults, blacklist cells.
/// Every call needs `Authorization: Bearer <admin token>`.
struct AdminHTTPAPI: Sendable {
    let proxy: OrderProxy
    let drills: (any CellDrillControl)?
    let routingChanges: any RoutingChanges
    let token: String?
    let clock: @Sendable () -> Timestamp

    func addRoutes(_ routes: inout RouteRegistrar<BasicRequestContext>) {
        routes.on(.get, "/admin/cells") { request, _ in
            try authorize(request)
            return try HTTPBodies.json(await cellList())
        }
        routes.on(.put, "/admin/cells/{cell_id}/fault") { request, context in
            try authorize(request)
            let cell = try cellID(context)
            let body = try await HTTPBodies.decode(FaultBody.self, from: request)
            try await setFault(try body.fault(), on: cell)
            return try HTTPBodies.json(await view(of: cell))
        }
        routes.on(.delete, "/admin/cells/{cell_id}/fault") { request, context in
            try authorize(request)
            let cell = try cellID(context)
            try await setFault(.none, on: cell)
            return try HTTPBodies.json(await view(of: cell))
        }
        routes.on(.put, "/admin/cells/{cell_id}/blacklist") { request, context in
            try authorize(request)
            let cell = try cellID(context)
            let body = try await HTTPBodies.decodeIfPresent(BlacklistBody.self, from: request)
            let now = clock()
            let reason = body?.reason ?? "blacklisted by an operator"
            try RequestLimits.checkText(reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
            var until: Timestamp?
            if let seconds = body?.expiresInSeconds {
                guard (1...31_536_000).contains(seconds) else {
                    throw OrderError.invalidRequest("expires_in_seconds must be 1...31536000 (a year), got \(seconds)")
                }
                until = now.adding(seconds: seconds)
            }
            let entry = BlacklistEntry(reason: reason, since: now, until: until)
            try await updateRouting { try await $0.blacklist(cell, entry) }
            return try HTTPBodies.json(await view(of: cell))
        }
        routes.on(.delete, "/admin/cells/{cell_id}/blacklist") { request, context in
            try authorize(request)
            let cell = try cellID(context)
            try await updateRouting { try await $0.unblacklist(cell) }
            return try HTTPBodies.json(await view(of: cell))
        }
    }

    private func authorize(_ request: Request) throws(OrderError) {
        guard let token else { throw OrderError(.unauthorized, "operator endpoints are disabled: no admin token is configured") }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw OrderError(.unauthorized, "operator endpoints need 'Authorization: Bearer <admin token>'")
        }
        guard Self.constantTimeEqual(Array(header.utf8.dropFirst(7)), Array(token.utf8)) else {
            throw OrderError(.unauthorized, "the admin token is not valid")
        }
    }

    /// Compares without an early exit, so timing does not reveal a matching prefix.
    static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: lhs.count ^ rhs.count)
        for index in 0..<max(lhs.count, rhs.count) {
            difference |= (index < lhs.count ? lhs[index] : 0) ^ (index < rhs.count ? rhs[index] : 0)
        }
        return difference == 0 && lhs.count == rhs.count
    }

    private func cellID(_ context: BasicRequestContext) throws(OrderError) -> CellID {
        let text = context.parameters.get("cell_id") ?? ""
        guard let number = Int(text), let cell = CellID(number) else {
            throw OrderError.invalidRequest("cell_id must be a number 0...9999, got '\(text.prefix(16))'")
        }
        guard proxy.routingTable.cells[cell] != nil else {
            throw OrderError(.notFound, "cell \(cell) is not in the routing table")
        }
        return cell
    }

    private func setFault(_ fault: CellFault, on cell: CellID) async throws {
        guard let drills else { throw OrderError.invalidRequest("this deployment does not support fault injection") }
        try await drills.setFault(fault, on: cell)
    }

    private func updateRouting(_ change: (any RoutingChanges) async throws -> RoutingTable) async throws {
        do {
            proxy.install(try await change(routingChanges))
        } catch let error as RoutingTableError {
            throw OrderError.invalidRequest(error.description)
        }
    }

    private func cellList() async -> CellListView {
        let table = proxy.routingTable
        var cells: [CellView] = []
        for cell in table.sortedCells { cells.append(await view(of: cell.id, table: table)) }
        return CellListView(routingVersion: table.version, cells: cells)
    }

    private func view(of cell: CellID, table: RoutingTable? = nil) async -> CellView {
        let table = table ?? proxy.routingTable
        let route = table.cells[cell]!
        let now = clock()
        var fault = "unknown"
        if let drills, let current = try? await drills.fault(of: cell) {
            fault = FaultBody.describe(current)
        }
        return CellView(
            cellID: Int(cell.rawValue), partition: route.partition.rawValue, state: route.state.rawValue,
            weight: route.weight,
            blacklist: table.blacklist[cell].flatMap { entry in
                entry.isInForce(at: now)
                    ? BlacklistView(reason: entry.reason, since: entry.since.rfc3339, until: entry.until?.rfc3339) : nil
            },
            ejectedUntil: proxy.ejectedCells[cell]?.rfc3339,
            fault: fault
        )
    }
}

struct FaultBody: Decodable {
    var mode: String
    var latencyMilliseconds: Int?
    enum CodingKeys: String, CodingKey { case mode, latencyMilliseconds = "latency_ms" }

    func fault() throws(OrderError) -> CellFault {
        switch mode {
        case "fail": return .fail
        case "none": return .none
        case "latency":
            guard let latency = latencyMilliseconds, (1...60_000).contains(latency) else {
                throw OrderError.invalidRequest("latency_ms must be 1...60000 for mode latency")
            }
            return .latency(milliseconds: latency)
        default:
            throw OrderError.invalidRequest("mode must be fail, latency or none, got '\(mode.prefix(16))'")
        }
    }

    static func describe(_ fault: CellFault) -> String {
        switch fault {
        case .none: return "none"
        case .fail: return "fail"
        case .latency(let milliseconds): return "latency \(milliseconds) ms"
        }
    }
}

struct BlacklistBody: Decodable {
    var reason: String?
    var expiresInSeconds: Int64?
    enum CodingKeys: String, CodingKey { case reason, expiresInSeconds = "expires_in_seconds" }
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
    var blacklist: BlacklistView?
    var ejectedUntil: String?
    var fault: String
    enum CodingKeys: String, CodingKey {
        case cellID = "cell_id", partition, state, weight, blacklist, ejectedUntil = "ejected_until", fault
    }
}

struct BlacklistView: Encodable {
    var reason: String
    var since: String
    var until: String?
}
