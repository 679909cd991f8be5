import OrderModel

/// The name of a partition: a group of cells serving one class of merchants.
public struct PartitionName: Hashable, Comparable, Sendable, Codable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
    public var description: String { rawValue }
    public static func < (lhs: PartitionName, rhs: PartitionName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The class of service a partition gives (differentiated service).
public enum PartitionKind: String, Sendable, Codable, CaseIterable {
    case vip, normal, canary, cold
}

/// A partition of the routing table.
public struct Partition: Sendable, Codable, Equatable {
    public var name: PartitionName
    public var kind: PartitionKind

    public init(name: PartitionName, kind: PartitionKind) {
        self.name = name
        self.kind = kind
    }
}

/// Where a cell is in its life; only `ACTIVE` cells take new orders.
public enum CellState: String, Sendable, Codable, CaseIterable {
    /// Takes new orders and serves its existing ones.
    case active = "ACTIVE"
    /// Full: no new orders; pay, close, refund and query continue.
    case sealed = "SEALED"
    /// Being copied to cold storage.
    case cooling = "COOLING"
    /// Served from cold storage.
    case cold = "COLD"
    /// Gone; its ids no longer route.
    case retired = "RETIRED"

    /// Whether the cell's existing orders are still served.
    public var servesExistingOrders: Bool { self != .retired }
}

/// Where a cell keeps its data: the primary and the replicas, as
/// `postgres://user@host:port/database` URLs (empty when embedded).
public struct CellStorageRoute: Sendable, Codable, Equatable {
    public var primary: String
    public var replicas: [String]

    public init(primary: String, replicas: [String] = []) {
        self.primary = primary
        self.replicas = replicas
    }
}

/// One cell as the routing table knows it.
public struct CellRoute: Sendable, Codable, Equatable {
    public var id: CellID
    public var partition: PartitionName
    public var state: CellState
    /// Addresses (`host:port`) of the cell's services (empty when embedded in-process).
    public var endpoints: [String]
    /// Relative share of new orders, 0 (none) to 1000.
    public var weight: Int
    /// The cell's storage servers (nil when embedded).
    public var storage: CellStorageRoute?

    public init(
        id: CellID, partition: PartitionName, state: CellState = .active, endpoints: [String] = [], weight: Int = 100,
        storage: CellStorageRoute? = nil
    ) {
        self.id = id
        self.partition = partition
        self.state = state
        self.endpoints = endpoints
        self.weight = weight
        self.storage = storage
    }
}

/// An operator's decision to keep a cell out of new-order placement.
public struct BlacklistEntry: Sendable, Codable, Equatable {
    public var reason: String
    public var since: Timestamp
    /// When the entry lapses by itself; `nil` keeps it until removed.
    public var until: Timestamp?

    public init(reason: String, since: Timestamp, until: Timestamp? = nil) {
        self.reason = reason
        self.since = since
        self.until = until
    }

    public func isInForce(at now: Timestamp) -> Bool { until.map { now < $0 } ?? true }
}

/// The routing table: which cells exist, where they are, which partition
/// each merchant's new orders go to, and which cells operators blacklisted.
///
/// A value type: proxies hold one immutable snapshot at a time and swap it
/// whole when a new version arrives. Every change increments ``version``.
public struct RoutingTable: Sendable, Equatable {
    public private(set) var version: UInt64
    public private(set) var cells: [CellID: CellRoute]
    public private(set) var partitions: [PartitionName: Partition]
    /// Explicit merchant → partition rules; other merchants use ``defaultPartition``.
    public private(set) var merchantPartitions: [String: PartitionName]
    public private(set) var defaultPartition: PartitionName
    public private(set) var blacklist: [CellID: BlacklistEntry]

    /// Placement index: for each partition, its cells in id order.
    private var cellsByPartition: [PartitionName: [CellRoute]]

    public init(
        version: UInt64 = 1, cells: [CellRoute], partitions: [Partition], defaultPartition: PartitionName,
        merchantPartitions: [String: PartitionName] = [:], blacklist: [CellID: BlacklistEntry] = [:]
    ) throws(RoutingTableError) {
        self.version = version
        self.cells = [:]
        self.partitions = [:]
        self.merchantPartitions = merchantPartitions
        self.defaultPartition = defaultPartition
        self.blacklist = blacklist
        self.cellsByPartition = [:]
        for partition in partitions {
            guard self.partitions.updateValue(partition, forKey: partition.name) == nil else {
                throw .duplicatePartition(partition.name)
            }
        }
        for cell in cells {
            guard self.cells.updateValue(cell, forKey: cell.id) == nil else { throw .duplicateCell(cell.id) }
        }
        try validate()
        reindex()
    }

    private func validate() throws(RoutingTableError) {
        guard partitions[defaultPartition] != nil else { throw .unknownPartition(defaultPartition) }
        for cell in cells.values {
            guard partitions[cell.partition] != nil else { throw .unknownPartition(cell.partition) }
            guard (0...1000).contains(cell.weight) else { throw .invalidWeight(cell.id, cell.weight) }
        }
        for partition in merchantPartitions.values where partitions[partition] == nil {
            throw .unknownPartition(partition)
        }
        for cell in blacklist.keys where cells[cell] == nil { throw .unknownCell(cell) }
    }

    private mutating func reindex() {
        var index: [PartitionName: [CellRoute]] = [:]
        for cell in cells.values.sorted(by: { $0.id < $1.id }) { index[cell.partition, default: []].append(cell) }
        cellsByPartition = index
    }

    /// The partition a merchant's new orders go to.
    public func partition(forMerchant merchantID: String) -> PartitionName {
        merchantPartitions[merchantID] ?? defaultPartition
    }

    /// The cells of `partition` that may take new orders at `now`:
    /// `ACTIVE`, weight above zero and not blacklisted.
    public func placementCandidates(in partition: PartitionName, at now: Timestamp) -> [CellRoute] {
        guard let cells = cellsByPartition[partition] else { return [] }
        return cells.filter { cell in
            cell.state == .active && cell.weight > 0 && !(blacklist[cell.id]?.isInForce(at: now) ?? false)
        }
    }

    /// The cells in id order.
    public var sortedCells: [CellRoute] { cells.values.sorted { $0.id < $1.id } }

    /// Returns a copy with `cell` blacklisted, as the next version.
    public func blacklisting(_ cell: CellID, _ entry: BlacklistEntry) throws(RoutingTableError) -> RoutingTable {
        guard cells[cell] != nil else { throw .unknownCell(cell) }
        var next = self
        next.blacklist[cell] = entry
        next.version += 1
        return next
    }

    /// Returns a copy with `cell` off the blacklist, as the next version.
    public func unblacklisting(_ cell: CellID) throws(RoutingTableError) -> RoutingTable {
        guard cells[cell] != nil else { throw .unknownCell(cell) }
        var next = self
        next.blacklist[cell] = nil
        next.version += 1
        return next
    }

    /// Returns a copy with one cell changed, as the next version.
    public func updatingCell(_ cell: CellID, _ change: (inout CellRoute) -> Void) throws(RoutingTableError) -> RoutingTable {
        guard var route = cells[cell] else { throw .unknownCell(cell) }
        change(&route)
        var next = self
        next.cells[cell] = route
        next.version += 1
        try next.validate()
        next.reindex()
        return next
    }
}

extension RoutingTable: Codable {
    enum CodingKeys: String, CodingKey {
        case version, cells, partitions
        case defaultPartition = "default_partition"
        case merchantPartitions = "merchant_partitions"
        case blacklist
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let blacklist = try container.decodeIfPresent([String: BlacklistEntry].self, forKey: .blacklist) ?? [:]
        var entries: [CellID: BlacklistEntry] = [:]
        for (key, entry) in blacklist {
            guard let number = Int(key), let cell = CellID(number) else {
                throw DecodingError.dataCorruptedError(forKey: .blacklist, in: container, debugDescription: "cell id \(key)")
            }
            entries[cell] = entry
        }
        do {
            try self.init(
                version: try container.decode(UInt64.self, forKey: .version),
                cells: try container.decode([CellRoute].self, forKey: .cells),
                partitions: try container.decode([Partition].self, forKey: .partitions),
                defaultPartition: try container.decode(PartitionName.self, forKey: .defaultPartition),
                merchantPartitions: try container.decodeIfPresent([String: PartitionName].self, forKey: .merchantPartitions) ?? [:],
                blacklist: entries
            )
        } catch let error as RoutingTableError {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(version, forKey: .version)
        try container.encode(sortedCells, forKey: .cells)
        try container.encode(partitions.values.sorted { $0.name < $1.name }, forKey: .partitions)
        try container.encode(defaultPartition, forKey: .defaultPartition)
        try container.encode(merchantPartitions, forKey: .merchantPartitions)
        var blacklist: [String: BlacklistEntry] = [:]
        for (cell, entry) in self.blacklist { blacklist[cell.description] = entry }
        try container.encode(blacklist, forKey: .blacklist)
    }
}

/// Why a routing table or a change to it is refused.
public enum RoutingTableError: Error, Equatable, Sendable, CustomStringConvertible {
    case duplicateCell(CellID)
    case duplicatePartition(PartitionName)
    case unknownPartition(PartitionName)
    case unknownCell(CellID)
    case invalidWeight(CellID, Int)

    public var description: String {
        switch self {
        case .duplicateCell(let cell): return "cell \(cell) appears twice"
        case .duplicatePartition(let name): return "partition \(name) appears twice"
        case .unknownPartition(let name): return "partition \(name) does not exist"
        case .unknownCell(let cell): return "cell \(cell) is not in the routing table"
        case .invalidWeight(let cell, let weight): return "cell \(cell) has weight \(weight); weights are 0...1000"
        }
    }
}
