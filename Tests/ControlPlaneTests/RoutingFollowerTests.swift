import CellRouting
import ControlPlane
import Foundation
import Hummingbird
import Logging
import OrderHTTP
import OrderModel
import ServiceLifecycle
import Testing

/// A follower (proxy or cell service) long-polling a real control plane over HTTP.
@Suite("Routing followers")
struct RoutingFollowerTests {
    @Test func followersShowATokenAndOneOfAnotherEpochTakesTheCurrentReleaseAtOnce() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-follow-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let initial = try RoutingTable(
            cells: [CellRoute(id: CellID(unchecked: 1), partition: "n")], partitions: [Partition(name: "n", kind: .normal)], defaultPartition: "n"
        )
        let store = try await SQLiteRoutingReleaseStore.open(path: directory.appendingPathComponent("control.sqlite").path)
        let control = try await ControlPlane(store: store, initialTable: initial, logger: logger)
        #expect(control.routingTable.epoch != nil, "a new control database names its epoch")
        let api = ControlAdminAPI(
            control: control, tokens: OperatorTokens(adminToken: "t", viewerToken: "follower"), servesFollowers: true,
            clock: { Timestamp(millisecondsSinceEpoch: 0) }, logger: logger
        )
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let application = Application(
            router: api.buildRouter(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger
        )
        let group = ServiceGroup(services: [application], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            // The routing table names every cell's storage: no token, no table.
            for token in [nil, "wrong"] {
                await #expect(throws: RoutingWatcher.Refused.self) {
                    try await RoutingWatcher(controlURL: "http://127.0.0.1:\(port)", token: token, logger: logger).fetch(timeout: .milliseconds(300))
                }
            }
            let watcher = RoutingWatcher(controlURL: "http://127.0.0.1:\(port)", token: "follower", logger: logger)
            // A follower that still holds release 40 of a control database that no longer exists.
            let stale = initial.publishedAs(version: 40).startingEpoch("gone")
            let (received, receivedContinuation) = AsyncStream.makeStream(of: RoutingTable.self)
            let watching = Task { await watcher.watch(from: stale) { receivedContinuation.yield($0) } }
            var tables = received.makeAsyncIterator()
            let first = await tables.next()
            #expect(first?.epoch == control.routingTable.epoch && first?.version == 1)
            // And then it follows the new database's releases as usual.
            _ = try await control.change(author: "test", reason: "weight") { try $0.updatingCell(CellID(unchecked: 1)) { $0.weight = 5 } }
            #expect(await tables.next()?.version == 2)
            watching.cancel()
            // Release the watcher's last long poll, so that the server's graceful shutdown need not wait for it.
            _ = try await control.change(author: "test", reason: "release the poll") { try $0.updatingCell(CellID(unchecked: 1)) { $0.weight = 6 } }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
