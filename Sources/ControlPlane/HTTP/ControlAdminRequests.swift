import CellRouting
import Foundation
import OrderModel

// The admin API's request bodies, shared by the control plane (which
// decodes and validates them) and ControlAdminClient (which sends them).

/// A change that needs nothing but why (unblacklist, unpin, rollback).
public struct ReasonRequest: Codable, Sendable {
    public var reason: String?
    public var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case reason, expectedVersion = "expected_version" }

    public init(reason: String? = nil, expectedVersion: UInt64? = nil) {
        self.reason = reason
        self.expectedVersion = expectedVersion
    }
}

/// `POST /admin/cells`: a cell joins the routing.
public struct AddCellRequest: Codable, Sendable {
    public var cellID: Int
    public var partition: String
    public var state: String?
    public var weight: Int?
    public var endpoints: [String]?
    public var storage: CellStorageRoute?
    public var versionLabel: String?
    public var reason: String?
    public var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey {
        case cellID = "cell_id", partition, state, weight, endpoints, storage, versionLabel = "version_label", reason
        case expectedVersion = "expected_version"
    }

    public init(
        cellID: Int, partition: String, state: String? = nil, weight: Int? = nil, endpoints: [String]? = nil,
        storage: CellStorageRoute? = nil, versionLabel: String? = nil, reason: String? = nil, expectedVersion: UInt64? = nil
    ) {
        self.cellID = cellID
        self.partition = partition
        self.state = state
        self.weight = weight
        self.endpoints = endpoints
        self.storage = storage
        self.versionLabel = versionLabel
        self.reason = reason
        self.expectedVersion = expectedVersion
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

/// `PATCH /admin/cells/{cell_id}`: what is given changes, the rest stays.
public struct CellPatchRequest: Codable, Sendable {
    public var partition: String?
    public var state: String?
    public var weight: Int?
    public var endpoints: [String]?
    public var versionLabel: String?
    public var reason: String?
    public var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey {
        case partition, state, weight, endpoints, versionLabel = "version_label", reason, expectedVersion = "expected_version"
    }

    public init(
        partition: String? = nil, state: String? = nil, weight: Int? = nil, endpoints: [String]? = nil, versionLabel: String? = nil,
        reason: String? = nil, expectedVersion: UInt64? = nil
    ) {
        self.partition = partition
        self.state = state
        self.weight = weight
        self.endpoints = endpoints
        self.versionLabel = versionLabel
        self.reason = reason
        self.expectedVersion = expectedVersion
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

/// `PUT /admin/cells/{cell_id}/blacklist`: no new orders in the cell, until lifted or expired.
public struct BlacklistRequest: Codable, Sendable {
    public var reason: String?
    public var expiresInSeconds: Int64?
    public var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case reason, expiresInSeconds = "expires_in_seconds", expectedVersion = "expected_version" }

    public init(reason: String? = nil, expiresInSeconds: Int64? = nil, expectedVersion: UInt64? = nil) {
        self.reason = reason
        self.expiresInSeconds = expiresInSeconds
        self.expectedVersion = expectedVersion
    }
}

/// `PUT /admin/partitions/{name}`: a partition's kind and spill-over.
public struct PartitionRequest: Codable, Sendable {
    public var kind: String
    public var spillTo: String?
    public var reason: String?
    public var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case kind, spillTo = "spill_to", reason, expectedVersion = "expected_version" }

    public init(kind: String, spillTo: String? = nil, reason: String? = nil, expectedVersion: UInt64? = nil) {
        self.kind = kind
        self.spillTo = spillTo
        self.reason = reason
        self.expectedVersion = expectedVersion
    }
}

/// `PUT /admin/merchants/{merchant_id}/partition`: a merchant's new orders go to a partition.
public struct MerchantPartitionRequest: Codable, Sendable {
    public var partition: String
    public var reason: String?
    public var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case partition, reason, expectedVersion = "expected_version" }

    public init(partition: String, reason: String? = nil, expectedVersion: UInt64? = nil) {
        self.partition = partition
        self.reason = reason
        self.expectedVersion = expectedVersion
    }
}

/// `PUT /admin/config`: the whole dynamic config, as read and changed.
public struct ConfigRequest: Codable, Sendable {
    public var policy: TrafficPolicy
    public var reason: String?
    public var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case policy, reason, expectedVersion = "expected_version" }

    public init(policy: TrafficPolicy, reason: String? = nil, expectedVersion: UInt64? = nil) {
        self.policy = policy
        self.reason = reason
        self.expectedVersion = expectedVersion
    }

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

/// `POST /admin/index-slots/move`: move index slots `first...last` to cell `to` (docs/merchant-keys.md).
public struct IndexSlotMoveRequest: Codable, Sendable {
    public var first: Int
    public var last: Int
    public var to: Int
    public var reason: String?
    public var expectedVersion: UInt64?
    enum CodingKeys: String, CodingKey { case first, last, to, reason, expectedVersion = "expected_version" }

    public init(first: Int, last: Int, to: Int, reason: String? = nil, expectedVersion: UInt64? = nil) {
        self.first = first
        self.last = last
        self.to = to
        self.reason = reason
        self.expectedVersion = expectedVersion
    }

    func validated() throws(OrderError) -> (slots: ClosedRange<Int>, to: CellID) {
        let all = 0..<IndexSlots.count
        guard all.contains(first), all.contains(last), first <= last else {
            throw OrderError.invalidRequest("first and last must be index slots 0...\(IndexSlots.count - 1), first <= last; got \(first)...\(last)")
        }
        guard let cell = CellID(to) else { throw OrderError.invalidRequest("to must be a cell number 0...9999, got \(to)") }
        return (first...last, cell)
    }
}
