import Foundation
import Synchronization

/// One operation the load generator can run, and what it returns.
public enum OperationOutcome: Sendable {
    case ok
    /// Failed with this error code (the problem `code`, or a transport error).
    case failed(String)
}

/// How a run offers load.
public enum LoadShape: Sendable {
    /// `clients` concurrent clients, each starting its next iteration when the last ends.
    case closed(clients: Int)
    /// Iterations start at a fixed rate whatever the latency; each latency is
    /// measured from when the iteration *should* have started, so a stall is
    /// charged to every iteration it delayed (no coordinated omission).
    case open(perSecond: Double, maximumInFlight: Int)
}

/// A scenario: one iteration of work for a client, recording each operation it does.
public protocol BenchScenario: Sendable {
    /// Runs one iteration; `record` is called once per operation with its
    /// name, its latency and its outcome.
    func iteration(client: Int, sequence: Int, record: @Sendable (String, Duration, OperationOutcome) -> Void) async
    /// The operation every iteration starts with; in an open-loop run it is
    /// charged with how late its iteration started.
    var firstOperation: String { get }
}

extension BenchScenario {
    public var firstOperation: String { "create" }
}

/// Runs a scenario for a warm-up and a measured period, printing progress.
public struct LoadRun: Sendable {
    public var name: String
    public var shape: LoadShape
    public var warmup: Duration
    public var duration: Duration
    public var progress: Bool

    public init(name: String, shape: LoadShape, warmup: Duration, duration: Duration, progress: Bool) {
        self.name = name
        self.shape = shape
        self.warmup = warmup
        self.duration = duration
        self.progress = progress
    }

    final class Collector: Sendable {
        let stats = Mutex<[String: OperationStats]>([:])
        let measuring = Atomic<Bool>(false)
        let completed = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let inFlight = Atomic<Int>(0)

        func record(_ operation: String, _ latency: Duration, _ outcome: OperationOutcome) {
            guard measuring.load(ordering: .relaxed) else { return }
            let micros = UInt64(max(0, latency.components.seconds * 1_000_000 + latency.components.attoseconds / 1_000_000_000_000))
            stats.withLock { stats in
                switch outcome {
                case .ok: stats[operation, default: OperationStats()].record(microseconds: micros)
                case .failed(let code): stats[operation, default: OperationStats()].errors[code, default: 0] += 1
                }
            }
            switch outcome {
            case .ok: completed.add(1, ordering: .relaxed)
            case .failed: failed.add(1, ordering: .relaxed)
            }
        }
    }

    public func run(_ scenario: some BenchScenario) async -> BenchReport {
        let collector = Collector()
        let clock = ContinuousClock()
        let start = clock.now
        let measureFrom = start.advanced(by: warmup)
        let end = measureFrom.advanced(by: duration)
        let progress = self.progress
        let name = self.name
        let reporter = Task {
            var last = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if clock.now >= measureFrom { collector.measuring.store(true, ordering: .relaxed) }
                guard progress else { continue }
                let done = collector.completed.load(ordering: .relaxed)
                let elapsed = clock.now - start
                let phase = clock.now < measureFrom ? "warm-up" : "measuring"
                FileHandle.standardError.write(
                    Data("\r\(name) \(phase) \(elapsed.components.seconds) s: \(done - last) ops/s, \(collector.failed.load(ordering: .relaxed)) errors   ".utf8)
                )
                last = done
            }
        }
        let record: @Sendable (String, Duration, OperationOutcome) -> Void = { collector.record($0, $1, $2) }
        switch shape {
        case .closed(let clients):
            await withTaskGroup(of: Void.self) { group in
                for client in 0..<clients {
                    group.addTask {
                        var sequence = 0
                        // Every client has at least one measured iteration, even one
                        // scheduled so late that the measured period is already over.
                        var measured = false
                        while clock.now < end || !measured {
                            let measuring = clock.now >= measureFrom
                            if measuring { collector.measuring.store(true, ordering: .relaxed) }
                            sequence += 1
                            await scenario.iteration(client: client, sequence: sequence, record: record)
                            measured = measured || measuring
                        }
                    }
                }
            }
        case .open(let perSecond, let maximumInFlight):
            let interval = Duration.seconds(1.0 / perSecond)
            let first = scenario.firstOperation
            await withTaskGroup(of: Void.self) { group in
                var intended = start
                var sequence = 0
                while intended < end {
                    if clock.now < intended { try? await Task.sleep(until: intended, clock: clock) }
                    if intended >= measureFrom { collector.measuring.store(true, ordering: .relaxed) }
                    sequence += 1
                    let scheduled = intended
                    let number = sequence
                    if collector.inFlight.load(ordering: .relaxed) >= maximumInFlight {
                        collector.record("dropped", .zero, .failed("client_saturated"))
                    } else {
                        collector.inFlight.add(1, ordering: .relaxed)
                        group.addTask {
                            // Latency counts from the intended start, not the actual one.
                            let lateBy = clock.now - scheduled
                            await scenario.iteration(client: number % 64, sequence: number) { operation, latency, outcome in
                                record(operation, latency + (operation == first ? lateBy : .zero), outcome)
                            }
                            collector.inFlight.subtract(1, ordering: .relaxed)
                        }
                    }
                    intended = intended.advanced(by: interval)
                }
            }
        }
        reporter.cancel()
        if progress { FileHandle.standardError.write(Data("\n".utf8)) }
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return BenchReport(name: name, seconds: seconds, operations: collector.stats.withLock { $0 })
    }
}
