import Foundation
import NIOCore
import NIOPosix
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
    func iteration(client: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void) async
    /// The operation every iteration starts with; in an open-loop run it is
    /// charged with how late its iteration started.
    var firstOperation: String { get }
}

extension BenchScenario {
    public var firstOperation: String { "create" }
}

/// A scenario that can run an iteration from an event loop, without a task.
///
/// An open loop paces every scenario's arrivals with one event loop's
/// timers; such a scenario's iterations start right there, where any other
/// starts a task for each. Offering load then wakes no other thread, so on
/// a machine shared with the system under test the load generator takes as
/// little of it as it can.
public protocol EventLoopBenchScenario: BenchScenario {
    /// Starts one iteration on `eventLoop`; the future completes when it has
    /// recorded all its operations (it never fails).
    func iteration(
        on eventLoop: any EventLoop, client: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void
    ) -> EventLoopFuture<Void>
}

/// Runs a scenario for a warm-up and a measured period, printing progress.
public struct LoadRun: Sendable {
    public var name: String
    public var shape: LoadShape
    public var warmup: Duration
    public var duration: Duration
    public var progress: Bool
    /// Where an open loop of an ``EventLoopBenchScenario`` paces its arrivals.
    public var eventLoopGroup: any EventLoopGroup

    public init(
        name: String, shape: LoadShape, warmup: Duration, duration: Duration, progress: Bool,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.name = name
        self.shape = shape
        self.warmup = warmup
        self.duration = duration
        self.progress = progress
        self.eventLoopGroup = eventLoopGroup
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
            let pacer = EventLoopPacer(
                scenario: scenario, eventLoop: eventLoopGroup.next(), collector: collector, perSecond: perSecond,
                maximumInFlight: maximumInFlight, warmup: warmup, duration: duration
            )
            await pacer.run()
        }
        reporter.cancel()
        if progress { FileHandle.standardError.write(Data("\n".utf8)) }
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return BenchReport(name: name, seconds: seconds, operations: collector.stats.withLock { $0 })
    }
}

/// The open loop: one event loop's timer starts every iteration at its
/// intended time (or at once, for those a stall made late), and each
/// iteration's first operation is charged with how late it started (no
/// coordinated omission). The same pacing for every scenario, so that
/// same-run baselines differ only in the work they measure.
final class EventLoopPacer: Sendable {
    private let scenario: any BenchScenario
    private let eventLoop: any EventLoop
    private let collector: LoadRun.Collector
    private let interval: TimeAmount
    private let maximumInFlight: Int
    private let warmup: TimeAmount
    private let duration: TimeAmount
    /// The next arrival's intended time and number; touched on `eventLoop` only.
    private let next: NIOLoopBoundBox<(intended: NIODeadline, sequence: Int)>
    private let start: NIODeadline
    /// Iterations under way, plus one for the pacer until its last arrival.
    private let outstanding = Atomic<Int>(1)
    private let finished: EventLoopPromise<Void>

    init(
        scenario: any BenchScenario, eventLoop: any EventLoop, collector: LoadRun.Collector, perSecond: Double,
        maximumInFlight: Int, warmup: Duration, duration: Duration
    ) {
        self.scenario = scenario
        self.eventLoop = eventLoop
        self.collector = collector
        precondition(perSecond > 0, "an open loop needs a positive rate")
        self.interval = .nanoseconds(max(1, Int64(1e9 / perSecond)))
        self.maximumInFlight = maximumInFlight
        self.warmup = TimeAmount(warmup)
        self.duration = TimeAmount(duration)
        self.start = .now()
        self.next = NIOLoopBoundBox.makeBoxSendingValue((start, 0), eventLoop: eventLoop)
        self.finished = eventLoop.makePromise()
    }

    /// Offers the load until the end of the measured period; returns when every iteration has ended.
    func run() async {
        eventLoop.execute { self.tick() }
        try? await finished.futureResult.get()
    }

    private func tick() {
        let measureFrom = start + warmup
        let end = measureFrom + duration
        while next.value.intended <= .now(), next.value.intended < end {
            let intended = next.value.intended
            next.value.sequence += 1
            next.value.intended = intended + interval
            if intended >= measureFrom { collector.measuring.store(true, ordering: .relaxed) }
            arrive(number: next.value.sequence, intended: intended)
        }
        guard next.value.intended < end else {
            endOne()
            return
        }
        eventLoop.scheduleTask(deadline: next.value.intended) { self.tick() }
    }

    /// Starts one iteration; its first operation is charged with how late it
    /// starts — read when it starts, after any arrivals before it in a catch-up.
    private func arrive(number: Int, intended: NIODeadline) {
        guard collector.inFlight.load(ordering: .relaxed) < maximumInFlight else {
            collector.record("dropped", .zero, .failed("client_saturated"))
            return
        }
        collector.inFlight.add(1, ordering: .relaxed)
        outstanding.add(1, ordering: .relaxed)
        let collector = self.collector
        let first = scenario.firstOperation
        @Sendable func recording(lateBy late: Duration) -> @Sendable (String, Duration, OperationOutcome) -> Void {
            { operation, latency, outcome in collector.record(operation, latency + (operation == first ? late : .zero), outcome) }
        }
        let iteration: EventLoopFuture<Void>
        if let scenario = scenario as? any EventLoopBenchScenario {
            let late = Duration.nanoseconds((NIODeadline.now() - intended).nanoseconds)
            iteration = scenario.iteration(on: eventLoop, client: number % 64, sequence: number, record: recording(lateBy: late))
        } else {
            // Late by the time the task runs: waiting for a thread is charged too.
            let promise = eventLoop.makePromise(of: Void.self)
            let scenario = self.scenario
            promise.completeWithTask {
                let late = Duration.nanoseconds((NIODeadline.now() - intended).nanoseconds)
                await scenario.iteration(client: number % 64, sequence: number, record: recording(lateBy: late))
            }
            iteration = promise.futureResult
        }
        iteration.whenComplete { _ in
            collector.inFlight.subtract(1, ordering: .relaxed)
            self.endOne()
        }
    }

    private func endOne() {
        if outstanding.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { finished.succeed() }
    }
}
