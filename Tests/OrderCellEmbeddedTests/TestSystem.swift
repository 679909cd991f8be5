import AsyncHTTPClient
import CellNotifier
import CellRouting
import CellService
import Foundation
import HealthChecking
import Logging
import NIOCore
import NIOHTTP1
import OrderCellEmbedded
import OrderModel
import OrderProxy
import ServiceLifecycle
import Synchronization
import Testing
@_exported import OrderCellTestSupport

/// A clock tests move by hand.
final class ManualClock: Sendable {
    private let current: Mutex<Timestamp>
    init(_ start: Timestamp = Timestamp(secondsSinceEpoch: 1_795_301_599)) { current = Mutex(start) }
    var now: Timestamp { current.withLock { $0 } }
    func advance(seconds: Int64) { current.withLock { $0 = $0.adding(seconds: seconds) } }
    func advance(milliseconds: Int64) { current.withLock { $0 = $0.adding(milliseconds: milliseconds) } }
}

/// An embedded system serving real HTTP on a free loopback port.
struct TestSystem: Sendable {
    let system: EmbeddedSystem
    let client: APIClient
    let clock: ManualClock

    static let adminToken = "test-admin-token"
    static let viewerToken = "test-viewer-token"

    static func run(
        layout: EmbeddedLayout = .singlePartition(cells: 4), proxy: ProxyConfiguration = .init(),
        healthCheck: HealthCheckPolicy = HealthCheckPolicy(), requireSignedRequests: Bool = false, clockStart: Timestamp? = nil,
        notifier: NotifierConfiguration? = nil, _ body: (TestSystem) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-e2e-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let clock = clockStart.map { ManualClock($0) } ?? ManualClock()
        var logger = Logger(label: "ordercell.test")
        logger.logLevel = .critical
        let system = try await EmbeddedSystem.open(
            EmbeddedConfiguration(
                dataDirectory: directory.path, port: 0, layout: layout, proxy: proxy, adminToken: adminToken, viewerToken: viewerToken,
                healthCheck: healthCheck,
                // Suites run side by side on two cores: a create may wait for
                // its commit longer than the production bound of 500 ms, and
                // these tests check where orders go, not how fast.
                groupCommit: GroupCommitConfiguration(maximumWait: .seconds(10)), requireSignedRequests: requireSignedRequests,
                notifier: notifier
            ),
            clock: { clock.now }, logger: logger
        )
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        // Not the health checker, the expiry sweeper nor the key reconciler: tests that want them drive them, on the test's clock.
        let group = ServiceGroup(
            services: system.services { continuation.yield($0) }.filter { !($0 is HealthChecker || $0 is ExpirySweeper || $0 is MerchantKeyReconciler) },
            logger: logger
        )
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let client = APIClient(base: "http://127.0.0.1:\(port)", adminToken: adminToken)
            do {
                try await body(TestSystem(system: system, client: client, clock: clock))
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}

