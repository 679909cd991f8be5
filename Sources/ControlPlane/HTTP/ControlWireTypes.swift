import CellRouting
import Foundation
import OrderModel

struct ReasonBody: Decodable {
    var reason: String?
    var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case reason, expectedVersion = "expected_version" }
}

struct AddCellBody: Decodable {
    var cellID: Int
    var partition: String
    var state: String?
    var weight: Int?
    var endpoints: [String]?
    var storage: CellStorageRoute?
    var versionLabel: String?
    var reason: String?
    var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey {
        case cellID = "cell_id", partition, state, weight, endpoints, storage, versionLabel = "version_label", reason
        case expectedVersion = "expected_version"
    }

    func route() throws(OrderError) -> CellRoute {
        guard let cell = CellID(cellID) else { throw OrderError.invalidRequest("cell_id must be 0...9999, got \(cellID)") }
        if let versionLabel { try RequestLimits.checkIdentifier(versionLabel, field: "version_label", length: 1...64) }
        return CellRoute(
            id: cell, partition: try ControlAdminAPI.partitionName(partition), state: try state.map(ControlAdminAPI.cellState) ?? .active,
            endpoints: try OperatorInput.endpoints(endpoints) ?? [], weight: weight ?? 100, storage: storage, versionLabel: versionLabel
        )
    }
}

struct CellPatchBody: Decodable {
    var partition: String?
    var state: String?
    var weight: Int?
    var endpoints: [String]?
    var versionLabel: String?
    var reason: String?
    var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey {
        case partition, state, weight, endpoints, versionLabel = "version_label", reason, expectedVersion = "expected_version"
    }

    var summary: String {
        var parts: [String] = []
        if let partition { parts.append("partition \(partition)") }
        if let state { parts.append("state \(state)") }
        if let weight { parts.append("weight \(weight)") }
        if let endpoints { parts.append("endpoints \(endpoints.joined(separator: ","))") }
        if let versionLabel { parts.append("version \(versionLabel)") }
        return parts.isEmpty ? "nothing" : parts.joined(separator: ", ")
    }
}

struct ControlBlacklistBody: Decodable {
    var reason: String?
    var expiresInSeconds: Int64?
    var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case reason, expiresInSeconds = "expires_in_seconds", expectedVersion = "expected_version" }
}

struct PartitionBody: Decodable {
    var kind: String
    var spillTo: String?
    var reason: String?
    var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case kind, spillTo = "spill_to", reason, expectedVersion = "expected_version" }
}

struct MerchantPartitionBody: Decodable {
    var partition: String
    var reason: String?
    var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case partition, reason, expectedVersion = "expected_version" }
}

struct ConfigBody: Decodable {
    var policy: TrafficPolicy
    var reason: String?
    var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case policy, reason, expectedVersion = "expected_version" }

    /// Checks the names the policy carries (the routing table checks the numbers and partitions).
    func validated() throws(OrderError) -> TrafficPolicy {
        let merchants = (policy.canary?.merchants ?? []) + Array(policy.rateLimits.merchantOverrides.keys)
        guard merchants.count <= 10_000, policy.flags.count <= 1_000 else {
            throw OrderError.invalidRequest("a policy lists at most 10000 merchants and 1000 flags")
        }
        for merchant in merchants { try RequestLimits.checkIdentifier(merchant, field: "merchant_id", length: RequestLimits.merchantIDLength) }
        for flag in policy.flags.keys { try RequestLimits.checkIdentifier(flag, field: "flag", length: 1...64) }
        return policy
    }
}

/// Checks of operator input that the routing table does not make itself.
enum OperatorInput {
    /// Cell service addresses (``CellServiceEndpoint``), at most 16; a bad one is refused naming its place.
    static func endpoints(_ endpoints: [String]?) throws(OrderError) -> [CellServiceEndpoint]? {
        guard let endpoints else { return nil }
        guard endpoints.count <= 16 else { throw OrderError.invalidRequest("endpoints: a cell has at most 16 endpoints") }
        var parsed: [CellServiceEndpoint] = []
        for (index, endpoint) in endpoints.enumerated() {
            do {
                parsed.append(try CellServiceEndpoint(parsing: endpoint))
            } catch {
                throw OrderError.invalidRequest("endpoints[\(index)]: \(error.detail)")
            }
        }
        return parsed
    }
}

/// The answer to every change: the new release, what it changed, and the routing.
public struct ChangeResultView: Codable, Sendable {
    public var version: UInt64
    public var author: String
    public var changes: [RoutingChange]
    public var routing: RoutingTable

    init(table: RoutingTable, author: String, changes: [RoutingChange]) {
        self.version = table.version
        self.author = author
        self.changes = changes
        self.routing = table
    }
}

struct ControlCellListView: Encodable {
    var routingVersion: UInt64
    var cells: [ControlCellView]
    enum CodingKeys: String, CodingKey { case routingVersion = "routing_version", cells }
}

struct ControlCellView: Encodable {
    var cellID: Int
    var partition: String
    var state: String
    var weight: Int
    var versionLabel: String?
    var endpoints: [String]
    var storage: CellStorageRoute?
    var blacklist: BlacklistEntry?
    var health: HealthMark?
    enum CodingKeys: String, CodingKey {
        case cellID = "cell_id", partition, state, weight, versionLabel = "version_label", endpoints, storage, blacklist, health
    }

    init(_ route: CellRoute, _ table: RoutingTable) {
        cellID = Int(route.id.rawValue)
        partition = route.partition.rawValue
        state = route.state.rawValue
        weight = route.weight
        versionLabel = route.versionLabel
        endpoints = route.endpoints.map(\.description)
        storage = route.storage
        blacklist = table.blacklist[route.id]
        health = table.health[route.id]
    }
}

struct PartitionListView: Encodable {
    struct Item: Encodable {
        var name: String
        var kind: String
        var spillTo: String?
        var cells: [Int]
        enum CodingKeys: String, CodingKey { case name, kind, spillTo = "spill_to", cells }
    }
    var routingVersion: UInt64
    var defaultPartition: String
    var partitions: [Item]
    var merchantPartitions: [String: String]
    enum CodingKeys: String, CodingKey {
        case routingVersion = "routing_version", defaultPartition = "default_partition", partitions, merchantPartitions = "merchant_partitions"
    }

    init(_ table: RoutingTable) {
        routingVersion = table.version
        defaultPartition = table.defaultPartition.rawValue
        partitions = table.partitions.values.sorted { $0.name < $1.name }.map { partition in
            Item(
                name: partition.name.rawValue, kind: partition.kind.rawValue, spillTo: partition.spillTo?.rawValue,
                cells: table.sortedCells.filter { $0.partition == partition.name }.map { Int($0.id.rawValue) }
            )
        }
        merchantPartitions = table.merchantPartitions.mapValues(\.rawValue)
    }
}

struct ConfigView: Encodable {
    var routingVersion: UInt64
    var policy: TrafficPolicy
    enum CodingKeys: String, CodingKey { case routingVersion = "routing_version", policy }
}

struct ReleaseSummaryView: Encodable {
    var version: UInt64
    var author: String
    var reason: String
    var createdAt: String
    var rolledBackTo: UInt64?
    enum CodingKeys: String, CodingKey { case version, author, reason, createdAt = "created_at", rolledBackTo = "rolled_back_to" }

    init(_ summary: RoutingReleaseSummary) {
        version = summary.version
        author = summary.author
        reason = summary.reason
        createdAt = Timestamp(millisecondsSinceEpoch: Int64(summary.createdAt.timeIntervalSince1970 * 1000)).rfc3339
        rolledBackTo = summary.rolledBackTo
    }
}

struct ReleaseListView: Encodable {
    var releases: [ReleaseSummaryView]
}

struct ReleaseView: Encodable {
    var version: UInt64
    var author: String
    var reason: String
    var createdAt: String
    var rolledBackTo: UInt64?
    var changes: [RoutingChange]
    var routing: RoutingTable
    enum CodingKeys: String, CodingKey {
        case version, author, reason, createdAt = "created_at", rolledBackTo = "rolled_back_to", changes, routing
    }

    init(release: RoutingRelease, changes: [RoutingChange]) {
        let summary = ReleaseSummaryView(
            RoutingReleaseSummary(
                version: release.version, author: release.author, reason: release.reason, createdAt: release.createdAt,
                rolledBackTo: release.rolledBackTo
            )
        )
        version = summary.version
        author = summary.author
        reason = summary.reason
        createdAt = summary.createdAt
        rolledBackTo = summary.rolledBackTo
        self.changes = changes
        routing = release.table
    }
}
