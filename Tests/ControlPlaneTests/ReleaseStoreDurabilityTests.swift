import Foundation
import Testing

@testable import ControlPlane

/// A published routing release is on disk before it is acknowledged.
@Suite("Release store durability")
struct ReleaseStoreDurabilityTests {
    @Test("the SQLite release store's writer fsyncs every commit (FULL), whatever GRDB's WAL set-up chose")
    func writerIsFull() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-releases-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try await SQLiteRoutingReleaseStore.open(path: directory.appendingPathComponent("control.sqlite").path)
        #expect(try await store.writerSynchronousLevel() == 2)
    }
}
