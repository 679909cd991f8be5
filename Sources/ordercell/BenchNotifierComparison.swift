import CellNotifier
import CellService
import ControlPlane
import Foundation
import Hummingbird
import Logging
import OrderCellBench
import OrderCellEmbedded
import OrderModel
import ServiceLifecycle
import Synchronization

/// `ordercell bench --compare-notifier`: what merchant notifications cost
/// the order path (docs/performance.md). Three embedded systems alike but
/// for their notifiers run the default mix (create, pay or close, query,
/// refund), in turn and twice over, so that a drift of the machine falls on
/// all: no notifier; a notifier whose merchants all acknowledge at once;
/// and one whose merchants' endpoints all hang (each attempt cut off after
/// 5 s). While a notifier runs, its lag behind each cell's feed is sampled.
struct NotifierComparison {
    enum Variant: String, CaseIterable {
        case none = "no notifier"
        case acknowledging = "notifier, merchants acknowledge"
        case hanging = "notifier, every merchant endpoint hangs"
    }

    /// How far the notifiers stood behind their feeds during one run.
    struct LagSample {
        var maximumMilliseconds: Int64 = 0
        var pendingAtEnd = 0
        var deadAtEnd = 0
        /// How long the backlog took to be sent after the run (acknowledging merchants).
        var drained: Duration?
    }

    let cells: Int
    let load: (String, HTTPOrderScenario) async -> BenchReport

    func run(_ http: BenchHTTPClient) async throws -> (reports: [BenchReport], lag: [String: LagSample]) {
        var logger = Logger(label: "ordercell.bench")
        logger.logLevel = .error
        // The merchants' two kinds of endpoint, on this machine: one answers 204 at once, one never answers.
        let router = Router()
        router.post("/acknowledge") { _, _ in Response(status: .noContent) }
        router.post("/hang") { _, _ -> Response in
            try await Task.sleep(for: .seconds(3600))
            return Response(status: .noContent)
        }
        let (receiverPorts, receiverPort) = AsyncStream.makeStream(of: Int.self)
        let receiver = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { receiverPort.yield($0.localAddress?.port ?? 0) }, logger: logger
        )
        let receiving = Task { try await receiver.runService() }
        defer { receiving.cancel() }
        var receiverIterator = receiverPorts.makeAsyncIterator()
        guard let endpointPort = await receiverIterator.next() else { throw BenchFailure("the merchants' endpoints did not start") }

        var systems: [(variant: Variant, system: EmbeddedSystem, group: ServiceGroup, server: Task<Void, any Error>, port: Int, directory: URL)] = []
        for variant in Variant.allCases {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-bench-\(UUID().uuidString)")
            let system = try await EmbeddedSystem.open(
                EmbeddedConfiguration(
                    dataDirectory: directory.path, port: 0, layout: .singlePartition(cells: cells), healthCheck: nil,
                    notifier: variant == .none ? nil : NotifierConfiguration()
                ),
                logger: logger
            )
            if variant != .none {
                let path = variant == .acknowledging ? "/acknowledge" : "/hang"
                for number in 0..<32 {
                    _ = try await system.notifyEndpoints.set(
                        merchantID: "bench-\(number)", url: "http://127.0.0.1:\(endpointPort)\(path)", allowPrivateNetwork: true, rotateSecret: false,
                        author: "bench", reason: "bench --compare-notifier"
                    )
                }
            }
            let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
            let group = ServiceGroup(services: system.services { continuation.yield($0) }, logger: logger)
            let server = Task { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw BenchFailure("the embedded server did not start") }
            systems.append((variant, system, group, server, port, directory))
        }
        defer { for system in systems { try? FileManager.default.removeItem(at: system.directory) } }

        var reports: [BenchReport] = []
        var lag: [String: LagSample] = [:]
        for pair in 1...2 {
            for entry in systems {
                let name = "\(entry.variant.rawValue), pair \(pair)"
                let sampling = entry.variant == .none ? nil : Task { await Self.sampleLag(of: entry.system) }
                reports.append(await load(name, try HTTPOrderScenario(urls: ["http://127.0.0.1:\(entry.port)"], client: http, createOnly: false)))
                if let sampling {
                    sampling.cancel()
                    var sample = LagSample(maximumMilliseconds: await sampling.value)
                    for service in entry.system.cells.values {
                        let page = try await service.notifierStatus(nil, after: nil, limit: 1)
                        sample.pendingAtEnd += page.backlog.pending
                        sample.deadAtEnd += page.backlog.dead
                    }
                    // The next run must not pay for this one's backlog: acknowledging merchants' is sent first.
                    if entry.variant == .acknowledging {
                        let began = ContinuousClock.now
                        while ContinuousClock.now - began < .seconds(60), try await Self.pending(in: entry.system) > 0 {
                            try await Task.sleep(for: .milliseconds(100))
                        }
                        sample.drained = ContinuousClock.now - began
                    }
                    lag[name] = sample
                }
            }
        }
        for entry in systems {
            await entry.group.triggerGracefulShutdown()
            _ = try? await entry.server.value
        }
        return (reports, lag)
    }

    static func pending(in system: EmbeddedSystem) async throws -> Int {
        var pending = 0
        for service in system.cells.values { pending += try await service.notifierStatus(nil, after: nil, limit: 1).backlog.pending }
        return pending
    }

    /// Every 250 ms until cancelled: each cell's notifier lag behind its feed; the largest seen.
    static func sampleLag(of system: EmbeddedSystem) async -> Int64 {
        var largest: Int64 = 0
        while !Task.isCancelled {
            for service in system.cells.values {
                if let page = try? await service.notifierStatus(nil, after: nil, limit: 1) { largest = max(largest, page.feedLagMilliseconds) }
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
        return largest
    }

    /// The ratios of each notifier variant against no notifier, by operation, summed over the pairs.
    static func summary(_ reports: [BenchReport], lag: [String: LagSample]) -> String {
        var lines = ["", "with notifiers vs without (same run, default mix, sums of both pairs):"]
        func sum(_ variant: Variant, _ operation: String) -> Double {
            reports.filter { $0.name.hasPrefix(variant.rawValue + ",") }.map { $0.throughput(operation) }.reduce(0, +)
        }
        func worstP99(_ variant: Variant, _ operation: String) -> Double {
            reports.filter { $0.name.hasPrefix(variant.rawValue + ",") }.map { $0.percentile(99, operation) }.max() ?? 0
        }
        for variant in [Variant.acknowledging, .hanging] {
            for operation in ["create", "pay"] {
                let ratio = sum(variant, operation) / max(sum(.none, operation), 0.001)
                lines.append(
                    "  \(variant.rawValue.padding(toLength: 40, withPad: " ", startingAt: 0)) \(operation.padding(toLength: 6, withPad: " ", startingAt: 0)) throughput ×\(String(format: "%.2f", ratio)), p99 \(String(format: "%.2f", worstP99(variant, operation))) ms vs \(String(format: "%.2f", worstP99(.none, operation))) ms without"
                )
            }
        }
        lines.append("  notifier lag behind the cells' feeds under this load (largest seen, sampled every 250 ms):")
        for (name, sample) in lag.sorted(by: { $0.key < $1.key }) {
            let drained = sample.drained.map { String(format: ", all sent %.1f s later", Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18) } ?? ""
            lines.append("    \(name): \(sample.maximumMilliseconds) ms; at the end \(sample.pendingAtEnd) notifications pending, \(sample.deadAtEnd) dead\(drained)")
        }
        lines.append("  (the merchants' endpoints and the load generator run in this process, on the same cores as OrderCell)")
        return lines.joined(separator: "\n")
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
