import Foundation
import LocalCluster
import OrderCellCluster
import OrderCellTestSupport
import Testing

/// A local cluster started with the real `ordercell cluster up` for a whole suite.
struct LocalClusterFixture: Sendable {
    let directory: String
    let state: LocalClusterState

    @TaskLocal static var current: LocalClusterFixture?

    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["ORDERCELL_BINARY"] { return path }
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ordercell")
        return beside.path
    }

    var proxies: [APIClient] { state.proxyURLs.map { APIClient(base: $0, adminToken: state.adminToken) } }

    func component(_ name: String) -> LocalClusterState.Component? { state.components.first { $0.name == name } }

    /// `ordercell <arguments>`, returning its output.
    @discardableResult
    static func ordercell(_ arguments: [String]) async throws -> String {
        try await Command.run([binary] + arguments)
    }

    static func start(cells: Int) async throws -> LocalClusterFixture {
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build the ordercell product first (scripts/test does): \(binary)")
        let directory = "/tmp/ordercell-cluster-test-\(UUID().uuidString.prefix(8))"
        var lastError: (any Error)?
        for _ in 0..<4 {
            let base = Int.random(in: 20_000...55_000)
            do {
                try await ordercell(["cluster", "up", "--dir", directory, "--cells", "\(cells)", "--base-port", "\(base)", "--admin-token", "cluster-test-token"])
                return LocalClusterFixture(directory: directory, state: try LocalClusterRunner.state(in: directory))
            } catch {
                lastError = error
                _ = try? await ordercell(["cluster", "down", "--dir", directory])
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
        throw lastError!
    }

    func stop() async {
        _ = try? await Self.ordercell(["cluster", "down", "--dir", directory])
        // Anything still alive (a test failed half-way) goes too.
        for component in state.components {
            if let pid = component.pid, kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs a suite against a local cluster of its own.
struct LocalClusterTrait: SuiteTrait, TestScoping {
    let cells: Int

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let fixture = try await LocalClusterFixture.start(cells: cells)
        do {
            try await LocalClusterFixture.$current.withValue(fixture) { try await function() }
        } catch {
            await fixture.stop()
            throw error
        }
        await fixture.stop()
    }
}

extension Trait where Self == LocalClusterTrait {
    static func localCluster(cells: Int) -> Self { LocalClusterTrait(cells: cells) }
}

/// The suites that start a local cluster of their own run one after another
/// (nested here, under `.serialized`): each cluster is a dozen processes,
/// and two cores running several at once beside the rest of the suite
/// starve the tests that check deadlines.
@Suite(.serialized) struct LocalClusterSuites {}
