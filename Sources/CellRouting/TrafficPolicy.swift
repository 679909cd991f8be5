import OrderModel

/// The dynamic configuration carried in every routing release: canary
/// share, create rate limits, degradation switches, the create retry limit
/// and feature flags. Proxies apply it as soon as a release arrives.
public struct TrafficPolicy: Sendable, Equatable {
    /// Gray release: the share of new orders, or the merchants, sent to a canary partition.
    public var canary: CanaryRule?
    public var rateLimits: RateLimits
    public var degradation: DegradationSwitches
    /// Cells one create may try (overrides the proxy's default when set).
    public var maximumCreateAttempts: Int?
    /// Named on/off switches for features, served with the release.
    public var flags: [String: Bool]
    /// What a create does when its key's index slot cannot be reached, per
    /// partition; partitions not listed use ``IndexSlotPolicy/available``.
    public var indexSlotPolicies: [PartitionName: IndexSlotPolicy]

    public init(
        canary: CanaryRule? = nil, rateLimits: RateLimits = .init(), degradation: DegradationSwitches = .init(),
        maximumCreateAttempts: Int? = nil, flags: [String: Bool] = [:], indexSlotPolicies: [PartitionName: IndexSlotPolicy] = [:]
    ) {
        self.canary = canary
        self.rateLimits = rateLimits
        self.degradation = degradation
        self.maximumCreateAttempts = maximumCreateAttempts
        self.flags = flags
        self.indexSlotPolicies = indexSlotPolicies
    }

    /// The index-slot policy of a partition's creates.
    public func indexSlotPolicy(of partition: PartitionName) -> IndexSlotPolicy {
        indexSlotPolicies[partition] ?? .available
    }
}

/// What a create does when the index slot of its merchant key cannot be
/// reached (docs/merchant-keys.md).
public enum IndexSlotPolicy: String, Sendable, Codable, CaseIterable {
    /// Create the order anyway, unindexed: it cannot be paid while its
    /// slot cannot be reached (pay answers `503 index_unavailable`); once the
    /// slot answers, its pay or the reconciler claims its key. A repeat of
    /// such a create while the slot is still unreachable may make a second
    /// unindexed order (answered `201`): only one of them can ever be paid.
    /// The default: creates stay as available as the cells.
    case available
    /// Refuse the create: `503 index_unavailable`.
    case strict
}

/// Which new orders go to the canary partition: every order of the listed
/// merchants, and `percent` of the others' (merchants pinned to a partition
/// by an explicit rule never move).
public struct CanaryRule: Sendable, Codable, Equatable {
    public var partition: PartitionName
    /// Share of new orders, 0...100 (fractions allowed).
    public var percent: Double
    public var merchants: [String]

    public init(partition: PartitionName, percent: Double = 0, merchants: [String] = []) {
        self.partition = partition
        self.percent = percent
        self.merchants = merchants
    }

    enum CodingKeys: String, CodingKey { case partition, percent, merchants }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        partition = try container.decode(PartitionName.self, forKey: .partition)
        percent = try container.decodeIfPresent(Double.self, forKey: .percent) ?? 0
        merchants = try container.decodeIfPresent([String].self, forKey: .merchants) ?? []
    }
}

/// Create rate limits, enforced by each proxy with token buckets. A limit
/// is creates per second per proxy; a bucket holds `burstSeconds` of it.
public struct RateLimits: Sendable, Codable, Equatable {
    /// All creates through one proxy; nil: unlimited.
    public var globalCreatesPerSecond: Double?
    /// Each merchant's creates through one proxy, unless overridden; nil: unlimited.
    public var merchantCreatesPerSecond: Double?
    /// Per-merchant limits that replace the default.
    public var merchantOverrides: [String: Double]
    /// How many seconds of the rate a full bucket holds (the burst allowance).
    public var burstSeconds: Double

    public init(
        globalCreatesPerSecond: Double? = nil, merchantCreatesPerSecond: Double? = nil, merchantOverrides: [String: Double] = [:],
        burstSeconds: Double = 1
    ) {
        self.globalCreatesPerSecond = globalCreatesPerSecond
        self.merchantCreatesPerSecond = merchantCreatesPerSecond
        self.merchantOverrides = merchantOverrides
        self.burstSeconds = burstSeconds
    }

    /// The smallest and largest rates a limit may have (creates per second).
    public static let minimumRate = 0.01
    public static let maximumRate = 10_000_000.0

    /// The limit of `merchant`'s creates, if any.
    public func merchantLimit(_ merchant: String) -> Double? { merchantOverrides[merchant] ?? merchantCreatesPerSecond }

    public var isUnlimited: Bool { globalCreatesPerSecond == nil && merchantCreatesPerSecond == nil && merchantOverrides.isEmpty }

    enum CodingKeys: String, CodingKey {
        case globalCreatesPerSecond = "global_creates_per_second"
        case merchantCreatesPerSecond = "merchant_creates_per_second"
        case merchantOverrides = "merchant_overrides"
        case burstSeconds = "burst_seconds"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        globalCreatesPerSecond = try container.decodeIfPresent(Double.self, forKey: .globalCreatesPerSecond)
        merchantCreatesPerSecond = try container.decodeIfPresent(Double.self, forKey: .merchantCreatesPerSecond)
        merchantOverrides = try container.decodeIfPresent([String: Double].self, forKey: .merchantOverrides) ?? [:]
        burstSeconds = try container.decodeIfPresent(Double.self, forKey: .burstSeconds) ?? 1
    }
}

/// Switches that shed load or risk in an incident, each answered with the
/// `degraded` error code.
public struct DegradationSwitches: Sendable, Codable, Equatable {
    /// Refuse `consistency=eventual` reads (e.g. replicas are far behind).
    public var refuseEventualReads: Bool
    /// Refuse new refunds (pay, close and reads continue).
    public var refuseRefunds: Bool
    /// Refuse new orders whose partition is listed.
    public var refuseCreatesIn: [PartitionName]

    public init(refuseEventualReads: Bool = false, refuseRefunds: Bool = false, refuseCreatesIn: [PartitionName] = []) {
        self.refuseEventualReads = refuseEventualReads
        self.refuseRefunds = refuseRefunds
        self.refuseCreatesIn = refuseCreatesIn
    }

    enum CodingKeys: String, CodingKey {
        case refuseEventualReads = "refuse_eventual_reads"
        case refuseRefunds = "refuse_refunds"
        case refuseCreatesIn = "refuse_creates_in"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        refuseEventualReads = try container.decodeIfPresent(Bool.self, forKey: .refuseEventualReads) ?? false
        refuseRefunds = try container.decodeIfPresent(Bool.self, forKey: .refuseRefunds) ?? false
        refuseCreatesIn = try container.decodeIfPresent([PartitionName].self, forKey: .refuseCreatesIn) ?? []
    }
}

extension TrafficPolicy: Codable {
    enum CodingKeys: String, CodingKey {
        case canary
        case rateLimits = "rate_limits"
        case degradation
        case maximumCreateAttempts = "maximum_create_attempts"
        case flags
        case indexSlotPolicies = "index_slot_policies"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        canary = try container.decodeIfPresent(CanaryRule.self, forKey: .canary)
        rateLimits = try container.decodeIfPresent(RateLimits.self, forKey: .rateLimits) ?? .init()
        degradation = try container.decodeIfPresent(DegradationSwitches.self, forKey: .degradation) ?? .init()
        maximumCreateAttempts = try container.decodeIfPresent(Int.self, forKey: .maximumCreateAttempts)
        flags = try container.decodeIfPresent([String: Bool].self, forKey: .flags) ?? [:]
        var policies: [PartitionName: IndexSlotPolicy] = [:]
        for (name, policy) in try container.decodeIfPresent([String: IndexSlotPolicy].self, forKey: .indexSlotPolicies) ?? [:] {
            policies[PartitionName(name)] = policy
        }
        indexSlotPolicies = policies
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(canary, forKey: .canary)
        try container.encode(rateLimits, forKey: .rateLimits)
        try container.encode(degradation, forKey: .degradation)
        try container.encodeIfPresent(maximumCreateAttempts, forKey: .maximumCreateAttempts)
        try container.encode(flags, forKey: .flags)
        var policies: [String: IndexSlotPolicy] = [:]
        for (name, policy) in indexSlotPolicies { policies[name.rawValue] = policy }
        try container.encode(policies, forKey: .indexSlotPolicies)
    }
}

/// The health checker's verdict that a cell is down, published in the routing.
public struct HealthMark: Sendable, Codable, Equatable {
    public var since: Timestamp
    public var reason: String

    public init(since: Timestamp, reason: String) {
        self.since = since
        self.reason = reason
    }
}
