import CellRouting
import Foundation
import OrderModel

// The admin API's answers, encoded by the control plane and decoded by
// ControlAdminClient.

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
        self.routing = table.withSealedSecretsHidden
    }
}

/// `GET /admin/cells`: every cell as the routing table has it.
public struct ControlCellListView: Codable, Sendable {
    public var routingVersion: UInt64
    public var cells: [ControlCellView]
    enum CodingKeys: String, CodingKey { case routingVersion = "routing_version", cells }
}

/// One cell in the routing table: where it is, what it takes, and why not when it takes nothing.
public struct ControlCellView: Codable, Sendable {
    public var cellID: Int
    public var partition: String
    public var state: String
    public var weight: Int
    public var versionLabel: String?
    public var endpoints: [String]
    public var storage: CellStorageRoute?
    public var blacklist: BlacklistEntry?
    public var health: HealthMark?
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

/// `GET /admin/partitions`: the partitions, their cells and the merchant rules.
public struct PartitionListView: Codable, Sendable {
    public struct Item: Codable, Sendable {
        public var name: String
        public var kind: String
        public var spillTo: String?
        public var cells: [Int]
        enum CodingKeys: String, CodingKey { case name, kind, spillTo = "spill_to", cells }
    }
    public var routingVersion: UInt64
    public var defaultPartition: String
    public var partitions: [Item]
    public var merchantPartitions: [String: String]
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

/// `GET /admin/config`: the dynamic config and the version it is part of.
public struct ConfigView: Codable, Sendable {
    public var routingVersion: UInt64
    public var policy: TrafficPolicy
    enum CodingKeys: String, CodingKey { case routingVersion = "routing_version", policy }
}

/// One line of the audit log.
public struct ReleaseSummaryView: Codable, Sendable {
    public var version: UInt64
    public var author: String
    public var reason: String
    public var createdAt: String
    public var rolledBackTo: UInt64?
    enum CodingKeys: String, CodingKey { case version, author, reason, createdAt = "created_at", rolledBackTo = "rolled_back_to" }

    init(_ summary: RoutingReleaseSummary) {
        version = summary.version
        author = summary.author
        reason = summary.reason
        createdAt = Timestamp(millisecondsSinceEpoch: Int64(summary.createdAt.timeIntervalSince1970 * 1000)).rfc3339
        rolledBackTo = summary.rolledBackTo
    }
}

/// `GET /admin/releases`: the audit log, newest first.
public struct ReleaseListView: Codable, Sendable {
    public var releases: [ReleaseSummaryView]
}

/// `GET /admin/releases/{version}`: one release, what it changed, and its routing.
public struct ReleaseView: Codable, Sendable {
    public var version: UInt64
    public var author: String
    public var reason: String
    public var createdAt: String
    public var rolledBackTo: UInt64?
    public var changes: [RoutingChange]
    public var routing: RoutingTable
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
        routing = release.table.withSealedSecretsHidden
    }
}
