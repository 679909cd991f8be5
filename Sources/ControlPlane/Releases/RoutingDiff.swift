import CellRouting
import Foundation

/// One difference between two releases: a path into the routing document
/// (`cells[3].weight`, `policy.rate_limits.global_creates_per_second`) and
/// its JSON value before and after (nil: absent).
public struct RoutingChange: Sendable, Codable, Equatable, CustomStringConvertible {
    public var path: String
    public var before: String?
    public var after: String?

    public var description: String { "\(path): \(before ?? "—") → \(after ?? "—")" }
}

/// What changed between two releases, field by field. Cells are keyed by
/// id and partitions by name, so a change reads as the operator made it.
public enum RoutingDiff {
    public static func between(_ old: RoutingTable?, _ new: RoutingTable) throws -> [RoutingChange] {
        let before = try old.map(flatten) ?? [:]
        let after = try flatten(new)
        var changes: [RoutingChange] = []
        for path in Set(before.keys).union(after.keys).sorted() where path != "version" && before[path] != after[path] {
            changes.append(RoutingChange(path: path, before: before[path], after: after[path]))
        }
        return changes
    }

    private static func flatten(_ table: RoutingTable) throws -> [String: String] {
        let object = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(table))
        var leaves: [String: String] = [:]
        try flatten(object, path: "", into: &leaves)
        return leaves
    }

    private static func elementKey(_ element: [String: Any]) -> String? {
        (element["id"] ?? element["name"] ?? element["merchant_id"]).map { "\($0)" }
    }

    private static func flatten(_ value: Any, path: String, into leaves: inout [String: String]) throws {
        if let object = value as? [String: Any] {
            for (key, child) in object { try flatten(child, path: path.isEmpty ? key : "\(path).\(key)", into: &leaves) }
            return
        }
        // Cells by id, partitions by name, notify endpoints by merchant: a change reads per element, and a
        // sealed secret inside one is hidden below.
        if let array = value as? [[String: Any]], !array.isEmpty, array.allSatisfy({ Self.elementKey($0) != nil }) {
            for element in array {
                let key = Self.elementKey(element)!
                try flatten(element, path: "\(path)[\(key)]", into: &leaves)
            }
            return
        }
        // An access key's secret is sealed, and a diff names only that it changed.
        if path.hasSuffix(".sealed_secret") {
            leaves[path] = "\"(sealed)\""
            return
        }
        let data = try JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes])
        leaves[path] = String(decoding: data, as: UTF8.self)
    }
}
