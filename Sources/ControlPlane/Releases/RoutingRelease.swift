import CellRouting
import Foundation

/// One published version of the routing table and its dynamic config,
/// with who published it, why, and whether it rolled back to an earlier one.
public struct RoutingRelease: Sendable, Equatable {
    public var table: RoutingTable
    public var author: String
    public var reason: String
    public var createdAt: Date
    /// The release whose content this one restored, for a rollback.
    public var rolledBackTo: UInt64?

    public init(table: RoutingTable, author: String, reason: String, createdAt: Date = Date(), rolledBackTo: UInt64? = nil) {
        self.table = table
        self.author = author
        self.reason = reason
        self.createdAt = createdAt
        self.rolledBackTo = rolledBackTo
    }

    public var version: UInt64 { table.version }
}

/// A release in the audit trail, without its document.
public struct RoutingReleaseSummary: Sendable, Equatable {
    public var version: UInt64
    public var author: String
    public var reason: String
    public var createdAt: Date
    public var rolledBackTo: UInt64?

    public init(version: UInt64, author: String, reason: String, createdAt: Date, rolledBackTo: UInt64?) {
        self.version = version
        self.author = author
        self.reason = reason
        self.createdAt = createdAt
        self.rolledBackTo = rolledBackTo
    }
}

/// Why a release was not published.
public enum RoutingPublishError: Error, Equatable, CustomStringConvertible {
    /// Someone published a newer version first; read it and try again.
    case staleVersion(expected: UInt64, current: UInt64)

    public var description: String {
        switch self {
        case .staleVersion(let expected, let current):
            return "the change was made against version \(expected) but version \(current) is current"
        }
    }
}

/// The control database: immutable, numbered releases. A release is only
/// ever inserted, and only as exactly the next version, so two operators
/// changing the same version cannot both win.
public protocol RoutingReleaseStore: Sendable {
    /// The newest release, if any was published.
    func latest() async throws -> RoutingRelease?
    /// The release numbered `version`, if it exists.
    func release(_ version: UInt64) async throws -> RoutingRelease?
    /// The newest `limit` releases, newest first (the audit trail).
    func history(limit: Int) async throws -> [RoutingReleaseSummary]
    /// Publishes `release`; throws ``RoutingPublishError/staleVersion(expected:current:)``
    /// unless its version is exactly one above the newest.
    func publish(_ release: RoutingRelease) async throws
}

extension RoutingRelease {
    static func decodeTable(_ document: String) throws -> RoutingTable {
        try JSONDecoder().decode(RoutingTable.self, from: Data(document.utf8))
    }

    static func encodeTable(_ table: RoutingTable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(table), as: UTF8.self)
    }
}
