import AsyncHTTPClient
import ControlPlane
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

    var proxies: [APIClient] { state.proxyURLs.map { APIClient(base: $0, adminToken: state.adminToken, http: http) } }
    /// The control plane's admin API, with the admin token.
    var control: APIClient { APIClient(base: state.controlURL, adminToken: state.adminToken, http: http) }
    /// The HTTP client of this cluster: trusting its CA when it speaks TLS.
    var http: HTTPClient { (try? TrustedHTTPClients.trusting(caFile: state.caFile)) ?? .shared }

    func component(_ name: String) -> LocalClusterState.Component? { state.components.first { $0.name == name } }

    /// Cell `cell`'s PostgreSQL server that Patroni runs as the primary now (the leader of its
    /// members' `GET /cluster`; a failover or switchover moves it).
    func primary(cell: Int) async throws -> LocalClusterState.Component {
        let state = try LocalClusterRunner.state(in: directory)
        for member in LocalClusterRunner.patroniMembers(in: state) where member.cell == cell {
            guard let view = await member.cluster() else { continue }
            if let leader = view.leader, leader.state == "running", let component = state.components.first(where: { $0.name == leader.name }) {
                return component
            }
        }
        return try #require(nil as LocalClusterState.Component?, "cell \(cell) has no running Patroni leader")
    }

    /// `ordercell <arguments>`, returning its output.
    @discardableResult
    static func ordercell(_ arguments: [String]) async throws -> String {
        try await Command.run([binary] + arguments)
    }

    /// Component `name` as the state file has it now: a test that restarted one wrote its new pid there.
    func currentComponent(_ name: String) throws -> LocalClusterState.Component? {
        try LocalClusterRunner.state(in: directory).components.first { $0.name == name }
    }

    /// A process a test killed, with what it takes to start it again.
    struct KilledProcess: Sendable {
        var component: LocalClusterState.Component
        var arguments: [String]
    }

    /// SIGKILLs component `name` (a proxy, cell service or control plane), its command line read first.
    func kill9(_ name: String) throws -> KilledProcess {
        let component = try #require(try currentComponent(name), "no component \(name)")
        let pid = try #require(component.pid)
        let cmdline = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
        let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        try #require(arguments.count > 1, "\(name) runs (pid \(pid))")
        kill(pid, SIGKILL)
        return KilledProcess(component: component, arguments: Array(arguments.dropFirst()))
    }

    /// Starts a killed process again as it was, logging where it did, once its port is free; waits
    /// until it listens and records its new pid in the state file (`cluster down` stops it).
    func restart(_ killed: KilledProcess) async throws {
        let port = killed.component.port
        try await waitUntil(timeout: .seconds(10)) { !TCPProbe.accepts(port: port) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: killed.component.log))
        try log.seekToEnd()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = killed.arguments
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try ProcessLaunch.run(process)
        try log.close()
        try await waitUntil(timeout: .seconds(30)) { TCPProbe.accepts(port: port) || !process.isRunning }
        try #require(process.isRunning, "\(killed.component.name) started again")
        var state = try LocalClusterRunner.state(in: directory)
        for index in state.components.indices where state.components[index].name == killed.component.name {
            state.components[index].pid = process.processIdentifier
        }
        try JSONEncoder().encode(state).write(to: URL(fileURLWithPath: directory + "/cluster.json"))
    }

    /// Starts a cluster; `signedRequests` false passes `--unsigned-requests` and `transportSecurity` false
    /// `--plaintext` (the suites of other features, whose clients do not sign and call in plaintext).
    static func start(cells: Int, signedRequests: Bool = false, transportSecurity: Bool = false) async throws -> LocalClusterFixture {
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build the ordercell product first (scripts/test does): \(binary)")
        let directory = "/tmp/ordercell-cluster-test-\(UUID().uuidString.prefix(8))"
        var lastError: (any Error)?
        for _ in 0..<4 {
            let base = Int.random(in: 20_000...55_000)
            do {
                try await ordercell(
                    ["cluster", "up", "--dir", directory, "--cells", "\(cells)", "--base-port", "\(base)", "--admin-token", "cluster-test-token"]
                        + (signedRequests ? [] : ["--unsigned-requests"]) + (transportSecurity ? [] : ["--plaintext"])
                        // Merchant notifications on a schedule a test can wait for: retried every second, a killed
                        // cell service's notifier taken over within 3 s.
                        + ["--notify-retry-delays", "1s", "--notify-attempts", "1000", "--notify-attempt-timeout", "2s"]
                        + ["--notify-poll-interval", "100ms", "--notify-lease", "3s"]
                )
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
        for component in state.components + ((try? LocalClusterRunner.state(in: directory).components) ?? []) {
            if let pid = component.pid, kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs a suite against a local cluster of its own.
struct LocalClusterTrait: SuiteTrait, TestScoping {
    let cells: Int
    var signedRequests = false
    var transportSecurity = false

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let fixture = try await LocalClusterFixture.start(cells: cells, signedRequests: signedRequests, transportSecurity: transportSecurity)
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
    /// A cluster of `cells` cells; a suite about the defaults' security asks for signed requests and TLS on every hop.
    static func localCluster(cells: Int, signedRequests: Bool = false, transportSecurity: Bool = false) -> Self {
        LocalClusterTrait(cells: cells, signedRequests: signedRequests, transportSecurity: transportSecurity)
    }
}

/// The suites that start a local cluster of their own run one after another
/// (nested here, under `.serialized`): each cluster is a dozen processes,
/// and two cores running several at once beside the rest of the suite
/// starve the tests that check deadlines.
@Suite(.serialized) struct LocalClusterSuites {}
