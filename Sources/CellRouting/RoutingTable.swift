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
    /// Where new orders go when this partition has no cell that can take
    /// them; nil: they fail with `no_cell_available`.
    public var spillTo: PartitionName?

    public init(name: PartitionName, kind: PartitionKind, spillTo: PartitionName? = nil) {
        self.name = name
        self.kind = kind
        self.spillTo = spillTo
    }

    enum CodingKeys: String, CodingKey { case name, kind, spillTo = "spill_to" }
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

/// Where a cell keeps its data: the primary and the replicas (none when
/// embedded). In JSON, `postgres://user@host:port/database` URLs, each
/// validated when the table is read: a bad one fails the whole release.
public struct CellStorageRoute: Sendable, Codable, Equatable {
    public var primary: PostgresEndpoint
    public var replicas: [PostgresEndpoint]

    public init(primary: PostgresEndpoint, replicas: [PostgresEndpoint] = []) {
        self.primary = primary
        self.replicas = replicas
    }
}

/// One cell as the routing table knows it.
public struct CellRoute: Sendable, Codable, Equatable {
    public var id: CellID
    public var partition: PartitionName
    public var state: CellState
    /// Where the cell's service instances serve the cell protocol (empty when embedded in-process);
    /// the first that has not failed lately takes the cell's creates.
    public var endpoints: [CellServiceEndpoint]
    /// Relative share of new orders, 0 (none) to 1000.
    public var weight: Int
    /// The cell's storage servers (nil when embedded).
    public var storage: CellStorageRoute?
    /// The software release the cell runs (gray release), e.g. `2.4.0-canary`.
    public var versionLabel: String?

    public init(
        id: CellID, partition: PartitionName, state: CellState = .active, endpoints: [CellServiceEndpoint] = [], weight: Int = 100,
        storage: CellStorageRoute? = nil, versionLabel: String? = nil
    ) {
        self.id = id
        self.partition = partition
        self.state = state
        self.endpoints = endpoints
        self.weight = weight
        self.storage = storage
        self.versionLabel = versionLabel
    }

    enum CodingKeys: String, CodingKey { case id, partition, state, endpoints, weight, storage, versionLabel = "version_label" }
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

    /// An operator's request, validated: a reason of at most 256 bytes
    /// (default: "blacklisted by an operator") and an expiry of at most a year.
    public init(requestedAt now: Timestamp, reason: String?, expiresInSeconds: Int64?) throws(OrderError) {
        let reason = reason ?? "blacklisted by an operator"
        try RequestLimits.checkText(reason, field: "reason", maxBytes: RequestLimits.reasonMaxBytes)
        var until: Timestamp?
        if let seconds = expiresInSeconds {
            guard (1...31_536_000).contains(seconds) else {
                throw OrderError.invalidRequest("expires_in_seconds must be 1...31536000 (a year), got \(seconds)")
            }
            until = now.adding(seconds: seconds)
        }
        self.init(reason: reason, since: now, until: until)
    }
}

/// The routing table: which cells exist, where they are, which partition
/// each merchant's new orders go to, and which cells operators blacklisted.
///
/// A value type: proxies hold one immutable snapshot at a time and swap it
/// whole when a new version arrives. Every change increments ``version``.
public struct RoutingTable: Sendable, Equatable {
    public private(set) var version: UInt64
    /// The control database this release comes from, named once when it
    /// publishes its first release. Versions compare only within an epoch:
    /// a control database rebuilt from scratch starts again at version 1,
    /// and followers holding a higher version from the old one must still
    /// take its releases.
    public private(set) var epoch: String?
    public private(set) var cells: [CellID: CellRoute]
    public private(set) var partitions: [PartitionName: Partition]
    /// Explicit merchant → partition rules; other merchants use ``defaultPartition``.
    public private(set) var merchantPartitions: [String: PartitionName]
    public private(set) var defaultPartition: PartitionName
    public private(set) var blacklist: [CellID: BlacklistEntry]
    /// Cells the health checker found down; they take no new orders until it finds them up.
    public private(set) var health: [CellID: HealthMark]
    /// Dynamic configuration: canary, rate limits, degradation, retry limit, flags.
    public private(set) var policy: TrafficPolicy
    /// Which cell holds each slot of the merchant-key index.
    public private(set) var indexSlots: IndexSlots
    /// Orders made before the merchant-key index existed have no entries yet
    /// (a table written by an earlier release, docs/merchant-keys.md
    /// "Upgrading"): a create of a key the index does not know first looks
    /// for its order in every cell. The merchant-key reconciler ends it once
    /// every such order holds its key.
    public private(set) var indexBackfill: Bool = false
    /// The access keys of the public API by id (docs/security.md): every
    /// proxy checks signatures against the release it follows, so a key made,
    /// rotated or revoked takes effect with the push. Secrets only sealed.
    public private(set) var accessKeys: [String: AccessKey] = [:]
    /// Where each merchant that registered one is notified of its orders'
    /// results, by merchant id (docs/events.md): every cell's notifier sends
    /// by the release its cell service follows. Secrets only sealed.
    public private(set) var notifyEndpoints: [String: NotifyEndpoint] = [:]

    /// Placement index: for each partition, its cells in id order.
    private var cellsByPartition: [PartitionName: [CellRoute]]

    public init(
        version: UInt64 = 1, cells: [CellRoute], partitions: [Partition], defaultPartition: PartitionName,
        merchantPartitions: [String: PartitionName] = [:], blacklist: [CellID: BlacklistEntry] = [:],
        health: [CellID: HealthMark] = [:], policy: TrafficPolicy = .init(), indexSlots: IndexSlots? = nil
    ) throws(RoutingTableError) {
        self.version = version
        self.cells = [:]
        self.partitions = [:]
        self.merchantPartitions = merchantPartitions
        self.defaultPartition = defaultPartition
        self.blacklist = blacklist
        self.health = health
        self.policy = policy
        // A table without a map (its first release, or one written before the
        // index existed) deals the slots over its own cells; every later
        // release carries the map on unchanged.
        self.indexSlots = indexSlots ?? .dealt(over: cells.filter { $0.state.servesExistingOrders }.map(\.id))
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
        for cell in health.keys where cells[cell] == nil { throw .unknownCell(cell) }
        for partition in partitions.values {
            guard let spill = partition.spillTo else { continue }
            guard partitions[spill] != nil else { throw .unknownPartition(spill) }
            guard spill != partition.name else { throw .invalidPolicy("partition \(partition.name) cannot spill into itself") }
        }
        try validatePolicy()
        try validateIndexSlots()
    }

    private func validateIndexSlots() throws(RoutingTableError) {
        let usable = cells.values.filter { $0.state.servesExistingOrders }
        guard !indexSlots.cells.isEmpty || usable.isEmpty else {
            throw .invalidIndexSlots("the table has cells but its \(IndexSlots.count) index slots are mapped to none")
        }
        guard indexSlots.cells.isEmpty || indexSlots.cells.count == IndexSlots.count else {
            throw .invalidIndexSlots("the index has \(IndexSlots.count) slots, the map names \(indexSlots.cells.count)")
        }
        for cell in Set(indexSlots.cells) {
            guard let route = cells[cell] else { throw .invalidIndexSlots("index slots are mapped to cell \(cell), which is not in the table") }
            guard route.state.servesExistingOrders else {
                throw .invalidIndexSlots("cell \(cell) is \(route.state.rawValue) and still holds index slots \(Self.ranges(indexSlots.slots(of: cell))); move them first")
            }
        }
    }

    /// `0-63, 128` for a list of slots.
    static func ranges(_ slots: [Int]) -> String {
        var parts: [String] = []
        var start: Int?
        var previous: Int?
        for slot in slots + [Int.max] {
            if let p = previous, slot == p + 1 { previous = slot; continue }
            if let s = start, let p = previous { parts.append(s == p ? "\(s)" : "\(s)-\(p)") }
            start = slot
            previous = slot
        }
        return parts.joined(separator: ", ")
    }

    /// The cell holding the index slot of `key`; nil in a table without cells.
    public func indexCell(for key: MerchantKey) -> CellID? { indexSlots.cell(for: key) }

    private func validatePolicy() throws(RoutingTableError) {
        if let canary = policy.canary {
            guard partitions[canary.partition] != nil else { throw .unknownPartition(canary.partition) }
            guard canary.percent.isFinite, (0...100).contains(canary.percent) else {
                throw .invalidPolicy("canary percent must be 0...100, got \(canary.percent)")
            }
        }
        let limits = policy.rateLimits
        for rate in [limits.globalCreatesPerSecond, limits.merchantCreatesPerSecond].compactMap({ $0 }) + Array(limits.merchantOverrides.values) {
            guard rate.isFinite, rate >= RateLimits.minimumRate, rate <= RateLimits.maximumRate else {
                throw .invalidPolicy("rate limits must be \(RateLimits.minimumRate)...\(Int(RateLimits.maximumRate)) per second, got \(rate)")
            }
        }
        guard limits.burstSeconds.isFinite, limits.burstSeconds >= 0.01, limits.burstSeconds <= 60 else {
            throw .invalidPolicy("burst_seconds must be 0.01...60, got \(limits.burstSeconds)")
        }
        for partition in policy.degradation.refuseCreatesIn where partitions[partition] == nil { throw .unknownPartition(partition) }
        for partition in policy.indexSlotPolicies.keys where partitions[partition] == nil { throw .unknownPartition(partition) }
        if let attempts = policy.maximumCreateAttempts, !(1...16).contains(attempts) {
            throw .invalidPolicy("maximum_create_attempts must be 1...16, got \(attempts)")
        }
    }

    private mutating func reindex() {
        var index: [PartitionName: [CellRoute]] = [:]
        for cell in cells.values.sorted(by: { $0.id < $1.id }) { index[cell.partition, default: []].append(cell) }
        cellsByPartition = index
    }

    /// The partition a merchant's new orders go to, without the canary share.
    public func partition(forMerchant merchantID: String) -> PartitionName {
        merchantPartitions[merchantID] ?? defaultPartition
    }

    /// The partition one new order goes to: the canary partition for the
    /// canary's listed merchants, else the merchant's explicit rule, else
    /// the canary partition for `percent` of orders (decided by a hash of
    /// `(merchant_id, out_trade_no)`, so a repeated create decides alike),
    /// else the default partition.
    public func partition(forMerchant merchantID: String, outTradeNo: String) -> PartitionName {
        guard let canary = policy.canary else { return partition(forMerchant: merchantID) }
        if canary.merchants.contains(merchantID) { return canary.partition }
        if let explicit = merchantPartitions[merchantID] { return explicit }
        if canary.percent > 0 {
            var random = SplitMix64(seedingFrom: "canary", merchantID, outTradeNo)
            if Double(random.next() % 1_000_000) < canary.percent * 10_000 { return canary.partition }
        }
        return defaultPartition
    }

    /// The cells of `partition` that may take new orders at `now`:
    /// `ACTIVE`, weight above zero, not blacklisted, not marked down by the
    /// health checker.
    public func placementCandidates(in partition: PartitionName, at now: Timestamp) -> [CellRoute] {
        guard let cells = cellsByPartition[partition] else { return [] }
        return cells.filter { cell in
            cell.state == .active && cell.weight > 0 && !(blacklist[cell.id]?.isInForce(at: now) ?? false) && health[cell.id] == nil
        }
    }

    /// Where new orders of `partition` go at `now`: the partition itself,
    /// or, when it has no candidate cell, the partition it spills to (one
    /// hop). Returns the partition used and its candidates (maybe none).
    public func placement(in partition: PartitionName, at now: Timestamp) -> (partition: PartitionName, cells: [CellRoute]) {
        let cells = placementCandidates(in: partition, at: now)
        guard cells.isEmpty, let spill = partitions[partition]?.spillTo else { return (partition, cells) }
        return (spill, placementCandidates(in: spill, at: now))
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
        route.id = cell
        return try revised { $0.cells[cell] = route }
    }

    /// Returns a copy with a new cell, as the next version.
    public func addingCell(_ route: CellRoute) throws(RoutingTableError) -> RoutingTable {
        guard cells[route.id] == nil else { throw .duplicateCell(route.id) }
        return try revised { $0.cells[route.id] = route }
    }

    /// Returns a copy with a partition added or changed, as the next version.
    public func settingPartition(_ partition: Partition) throws(RoutingTableError) -> RoutingTable {
        try revised { $0.partitions[partition.name] = partition }
    }

    /// Returns a copy with a merchant pinned to `partition` (nil: back to the default), as the next version.
    public func pinningMerchant(_ merchantID: String, to partition: PartitionName?) throws(RoutingTableError) -> RoutingTable {
        try revised { $0.merchantPartitions[merchantID] = partition }
    }

    /// The table with index slots `slots` mapped to `cell`, as the next
    /// version (an operator's slot move, after the slots' entries were
    /// copied: docs/merchant-keys.md).
    public func movingIndexSlots(_ slots: ClosedRange<Int>, to cell: CellID) throws(RoutingTableError) -> RoutingTable {
        guard slots.lowerBound >= 0, slots.upperBound < IndexSlots.count else {
            throw .invalidIndexSlots("index slots are 0...\(IndexSlots.count - 1), not \(slots.lowerBound)...\(slots.upperBound)")
        }
        guard cells[cell] != nil else { throw .unknownCell(cell) }
        return try revised { $0.indexSlots = $0.indexSlots.moving(slots, to: cell) }
    }

    /// The table with the index backfill over, as the next version: every
    /// order made before the index holds its key (the reconciler's verdict).
    public func endingIndexBackfill() throws(RoutingTableError) -> RoutingTable {
        try revised { $0.indexBackfill = false }
    }

    /// Returns a copy with new dynamic configuration, as the next version.
    public func settingPolicy(_ policy: TrafficPolicy) throws(RoutingTableError) -> RoutingTable {
        try revised { $0.policy = policy }
    }

    /// Returns a copy with the health checker's verdicts applied, as the next version.
    public func settingHealth(down: [CellID: HealthMark], up: Set<CellID>) throws(RoutingTableError) -> RoutingTable {
        try revised { table in
            for (cell, mark) in down where table.health[cell] == nil { table.health[cell] = mark }
            for cell in up { table.health[cell] = nil }
        }
    }

    /// The next version with `earlier`'s decisions restored: partitions,
    /// merchant rules, blacklist, policy, and each cell's partition, state,
    /// weight and version label, exactly as they were. What an operator did
    /// not decide stays as it is now: where each cell lives (storage
    /// servers after a failover, service endpoints), cells added since (a
    /// rollback never drops a cell, or its orders would stop routing), the
    /// health checker's current marks, the index slot map (the entries
    /// of a moved slot are in its new cell only), and the access keys.
    public func rollingBack(to earlier: RoutingTable) throws(RoutingTableError) -> RoutingTable {
        var next = earlier
        next.version = version + 1
        next.epoch = epoch
        for (id, current) in cells {
            if var restored = next.cells[id] {
                restored.storage = current.storage
                restored.endpoints = current.endpoints
                next.cells[id] = restored
            } else {
                next.cells[id] = current
                if next.partitions[current.partition] == nil, let partition = partitions[current.partition] {
                    next.partitions[partition.name] = partition
                }
            }
        }
        next.health = health
        next.indexSlots = indexSlots
        next.indexBackfill = indexBackfill
        // Access keys are credentials, not routing: a rollback never brings a revoked key back, drops a new one,
        // or lifts a rotated key's expiry.
        next.accessKeys = accessKeys
        // So are notification secrets: a rollback never brings back a secret the merchant replaced.
        next.notifyEndpoints = notifyEndpoints
        try next.validate()
        next.reindex()
        return next
    }

    /// Whether a follower holding `current` should install this table: a
    /// newer version of the same epoch, or any release of another epoch.
    public func supersedes(_ current: RoutingTable) -> Bool {
        if let epoch, epoch != current.epoch { return true }
        return version > current.version
    }

    /// The same routing as the first release of a new epoch.
    public func startingEpoch(_ epoch: String) -> RoutingTable {
        var copy = self
        copy.epoch = epoch
        return copy
    }

    /// The same routing published as `version` (a rollback republishes an
    /// earlier release's content under the next version number).
    public func publishedAs(version: UInt64) -> RoutingTable {
        var copy = self
        copy.version = version
        return copy
    }

    private func revised(_ change: (inout RoutingTable) -> Void) throws(RoutingTableError) -> RoutingTable {
        var next = self
        change(&next)
        next.version += 1
        if next.indexSlots.cells.isEmpty {
            next.indexSlots = .dealt(over: next.cells.values.filter { $0.state.servesExistingOrders }.map(\.id))
        }
        try next.validate()
        next.reindex()
        return next
    }
}

extension RoutingTable {
    /// Returns a copy with `keys` added (or, for ids it has, replaced: a
    /// rotation's expiry, a revocation), as the next version.
    public func settingAccessKeys(_ keys: [AccessKey]) throws(OrderError) -> RoutingTable {
        var next = self
        for key in keys {
            try key.validate()
            if let existing = accessKeys[key.id], existing.role != key.role || existing.merchantID != key.merchantID {
                throw OrderError.invalidRequest("access key \(key.id) belongs to \(existing.caller); it cannot change hands")
            }
            next.accessKeys[key.id] = key
        }
        next.version += 1
        return next
    }
}

extension RoutingTable {
    /// Returns a copy with `endpoint` as its merchant's notify endpoint, as the next version.
    public func settingNotifyEndpoint(_ endpoint: NotifyEndpoint) throws(OrderError) -> RoutingTable {
        try endpoint.validate()
        var next = self
        next.notifyEndpoints[endpoint.merchantID] = endpoint
        next.version += 1
        return next
    }

    /// Returns a copy without `merchantID`'s notify endpoint, as the next version.
    public func removingNotifyEndpoint(of merchantID: String) throws(OrderError) -> RoutingTable {
        guard notifyEndpoints[merchantID] != nil else { throw OrderError(.notFound, "merchant \(merchantID) has no notify endpoint") }
        var next = self
        next.notifyEndpoints[merchantID] = nil
        next.version += 1
        return next
    }
}

extension RoutingTable {
    /// This table as operators see it: every access key's sealed secret replaced by `(sealed)`. Only the
    /// followers' long poll (proxies need the sealed secrets to check signatures) serves the table whole.
    public var withSealedSecretsHidden: RoutingTable {
        var hidden = self
        for id in hidden.accessKeys.keys { hidden.accessKeys[id]?.sealedSecret = "(sealed)" }
        for id in hidden.notifyEndpoints.keys { hidden.notifyEndpoints[id]?.sealedSecret = "(sealed)" }
        return hidden
    }
}

extension RoutingTable: Codable {
    enum CodingKeys: String, CodingKey {
        case version, epoch, cells, partitions
        case defaultPartition = "default_partition"
        case merchantPartitions = "merchant_partitions"
        case blacklist, health, policy
        case indexSlots = "index_slots"
        case indexBackfill = "index_backfill"
        case accessKeys = "access_keys"
        case notifyEndpoints = "notify_endpoints"
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
        var health: [CellID: HealthMark] = [:]
        for (key, mark) in try container.decodeIfPresent([String: HealthMark].self, forKey: .health) ?? [:] {
            guard let number = Int(key), let cell = CellID(number) else {
                throw DecodingError.dataCorruptedError(forKey: .health, in: container, debugDescription: "cell id \(key)")
            }
            health[cell] = mark
        }
        do {
            try self.init(
                version: try container.decode(UInt64.self, forKey: .version),
                cells: try container.decode([CellRoute].self, forKey: .cells),
                partitions: try container.decode([Partition].self, forKey: .partitions),
                defaultPartition: try container.decode(PartitionName.self, forKey: .defaultPartition),
                merchantPartitions: try container.decodeIfPresent([String: PartitionName].self, forKey: .merchantPartitions) ?? [:],
                blacklist: entries,
                health: health,
                policy: try container.decodeIfPresent(TrafficPolicy.self, forKey: .policy) ?? .init(),
                indexSlots: try container.decodeIfPresent(IndexSlots.self, forKey: .indexSlots)
            )
        } catch let error as RoutingTableError {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: error.description))
        }
        epoch = try container.decodeIfPresent(String.self, forKey: .epoch)
        // A table written before the index existed has no slot map: its cells hold orders the index does not know.
        indexBackfill = try container.decodeIfPresent(Bool.self, forKey: .indexBackfill) ?? !container.contains(.indexSlots)
        for key in try container.decodeIfPresent([AccessKey].self, forKey: .accessKeys) ?? [] {
            do { try key.validate() } catch {
                throw DecodingError.dataCorruptedError(forKey: .accessKeys, in: container, debugDescription: error.detail)
            }
            guard accessKeys.updateValue(key, forKey: key.id) == nil else {
                throw DecodingError.dataCorruptedError(forKey: .accessKeys, in: container, debugDescription: "access key \(key.id) appears twice")
            }
        }
        for endpoint in try container.decodeIfPresent([NotifyEndpoint].self, forKey: .notifyEndpoints) ?? [] {
            do { try endpoint.validate() } catch {
                throw DecodingError.dataCorruptedError(forKey: .notifyEndpoints, in: container, debugDescription: error.detail)
            }
            guard notifyEndpoints.updateValue(endpoint, forKey: endpoint.merchantID) == nil else {
                throw DecodingError.dataCorruptedError(
                    forKey: .notifyEndpoints, in: container, debugDescription: "merchant \(endpoint.merchantID) has two notify endpoints"
                )
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(version, forKey: .version)
        try container.encodeIfPresent(epoch, forKey: .epoch)
        try container.encode(sortedCells, forKey: .cells)
        try container.encode(partitions.values.sorted { $0.name < $1.name }, forKey: .partitions)
        try container.encode(defaultPartition, forKey: .defaultPartition)
        try container.encode(merchantPartitions, forKey: .merchantPartitions)
        var blacklist: [String: BlacklistEntry] = [:]
        for (cell, entry) in self.blacklist { blacklist[cell.description] = entry }
        try container.encode(blacklist, forKey: .blacklist)
        var health: [String: HealthMark] = [:]
        for (cell, mark) in self.health { health[cell.description] = mark }
        try container.encode(health, forKey: .health)
        try container.encode(policy, forKey: .policy)
        try container.encode(indexSlots, forKey: .indexSlots)
        try container.encode(indexBackfill, forKey: .indexBackfill)
        try container.encode(accessKeys.values.sorted { $0.id < $1.id }, forKey: .accessKeys)
        try container.encode(notifyEndpoints.values.sorted { $0.merchantID < $1.merchantID }, forKey: .notifyEndpoints)
    }
}

/// Why a routing table or a change to it is refused.
public enum RoutingTableError: Error, Equatable, Sendable, CustomStringConvertible {
    case duplicateCell(CellID)
    case duplicatePartition(PartitionName)
    case unknownPartition(PartitionName)
    case unknownCell(CellID)
    case invalidWeight(CellID, Int)
    case invalidPolicy(String)
    case invalidIndexSlots(String)

    public var description: String {
        switch self {
        case .duplicateCell(let cell): return "cell \(cell) appears twice"
        case .duplicatePartition(let name): return "partition \(name) appears twice"
        case .unknownPartition(let name): return "partition \(name) does not exist"
        case .unknownCell(let cell): return "cell \(cell) is not in the routing table"
        case .invalidWeight(let cell, let weight): return "cell \(cell) has weight \(weight); weights are 0...1000"
        case .invalidPolicy(let detail), .invalidIndexSlots(let detail): return detail
        }
    }
}
