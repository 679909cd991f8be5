import CellRouting
import Foundation
import Logging

/// The last routing table a proxy or cell service received, kept on local
/// disk so that a process restarted while the control plane is down starts
/// from it instead of not starting at all.
public struct RoutingSnapshot: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// A routing table read back from disk, with when it was written.
    public struct Loaded: Sendable {
        public var table: RoutingTable
        public var writtenAt: Date
    }

    /// Writes `table` atomically (a whole old snapshot or a whole new one, never half).
    public func save(_ table: RoutingTable) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString)")
        try JSONEncoder().encode(table).write(to: temporary)
        guard rename(temporary.path, url.path) == 0 else {
            try? FileManager.default.removeItem(at: temporary)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }

    /// The routing table a process starts from: the control plane's, or,
    /// when it does not answer within a few seconds, this snapshot (logged
    /// with its age). Returns when the table was written if it came from the snapshot.
    public func startingTable(_ watcher: RoutingWatcher, logger: Logger) async throws -> (table: RoutingTable, snapshotWrittenAt: Date?) {
        let snapshot: Loaded?
        do {
            snapshot = try load()
        } catch {
            // Said, not swallowed: a snapshot that cannot be read is no fallback.
            logger.error("the routing snapshot cannot be read; starting needs the control plane", metadata: ["error": "\(error)", "path": "\(path)"])
            snapshot = nil
        }
        do {
            let table = try await watcher.fetch(timeout: snapshot == nil ? .seconds(30) : .seconds(3))
            do { try save(table) } catch { logger.error("cannot write the routing snapshot", metadata: ["error": "\(error)", "path": "\(path)"]) }
            return (table, nil)
        } catch {
            guard let loaded = snapshot else { throw error }
            let age = Int(Date().timeIntervalSince(loaded.writtenAt))
            logger.warning(
                "control plane unreachable: starting from the routing snapshot",
                metadata: ["version": "\(loaded.table.version)", "snapshot_age_seconds": "\(age)", "path": "\(path)"]
            )
            return (loaded.table, loaded.writtenAt)
        }
    }

    /// The snapshot; nil if none was written. Throws when one is there but
    /// cannot be read as a routing table (a bad location in it, say).
    public func load() throws -> Loaded? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let table = try JSONDecoder().decode(RoutingTable.self, from: data)
        let written = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? Date.distantPast
        return Loaded(table: table, writtenAt: written)
    }
}
