import Foundation
import NIOCore
import NIOPosix
import OrderCellBench
import OrderModel
import Synchronization
import Testing

/// The load generator's bookkeeping (figures are for benchmarks, not tests).
@Suite("Load generator")
struct BenchToolTests {
    struct Scripted: BenchScenario {
        func iteration(client: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void) async {
            // Every iteration records an accepted and a refused create, so the
            // checks hold however few iterations a busy machine runs.
            await Task.yield()
            record("create", .milliseconds(2), .ok)
            record("create", .milliseconds(2), .failed("refused"))
            record("query", .microseconds(300), .ok)
        }
    }

    @Test(arguments: [LoadShape.closed(clients: 4), .open(perSecond: 200, maximumInFlight: 50)])
    func countsOperationsAndErrorsByCode(shape: LoadShape) async throws {
        let report = await LoadRun(name: "scripted", shape: shape, warmup: .milliseconds(200), duration: .seconds(1), progress: false).run(Scripted())
        #expect(report.throughput("create") > 0)
        #expect(report.throughput("query") > 0)
        #expect(report.percentile(50, "create") >= 2, "latencies are recorded in milliseconds")
        let json = report.json
        let operations = try #require(json["operations"] as? [String: Any])
        let create = try #require(operations["create"] as? [String: Any])
        #expect((create["errors"] as? [String: Int])?["refused"] ?? 0 > 0)
        // "dropped" appears too when the machine cannot keep the open-loop rate (a saturated client is reported, not hidden).
        #expect(Set(operations.keys).isSuperset(of: ["create", "query", "all"]))
        #expect(report.text.contains("refused="))
    }
}

/// An event-loop scenario that blocks its event loop once, for 200 ms.
final class StallingOnce: EventLoopBenchScenario {
    let started = Atomic<Int>(0)

    func iteration(client: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void) async {
        Issue.record("an open loop of an event-loop scenario runs its iterations on the event loop")
    }

    func iteration(
        on eventLoop: any EventLoop, client: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void
    ) -> EventLoopFuture<Void> {
        started.add(1, ordering: .relaxed)
        if sequence == 20 { usleep(200_000) }
        record("create", .zero, .ok)
        return eventLoop.makeSucceededVoidFuture()
    }
}

@Suite("Load generator on an event loop")
struct EventLoopPacingTests {
    @Test("the open loop never offers more than its rate, and charges a stall to every iteration it delayed")
    func stallIsCharged() async throws {
        // A loop of its own: the stall must not hold up other suites' event loops.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let scenario = StallingOnce()
        let report = await LoadRun(
            name: "stall", shape: .open(perSecond: 200, maximumInFlight: 50), warmup: .zero, duration: .seconds(1), progress: false,
            eventLoopGroup: group
        ).run(scenario)
        try await group.shutdownGracefully()
        let started = scenario.started.load(ordering: .relaxed)
        #expect(started > 20 && started <= 200, "\(started) iterations started, 200 offered")
        // Each iteration itself records zero. The ~40 due while the loop was blocked count from
        // their intended start, each from the moment it really started: a fifth of them waited
        // over 50 ms, so the 90th percentile shows it, not just the maximum.
        #expect(report.percentile(90, "create") >= 50, "the 200 ms stall shows in the latencies")
        #expect(report.percentile(50, "create") < 50)
    }
}

extension LoadShape: CustomTestStringConvertible {
    public var testDescription: String {
        switch self {
        case .closed(let clients): return "closed loop, \(clients) clients"
        case .open(let rate, _): return "open loop, \(Int(rate))/s"
        }
    }
}

@Suite("Load generator over HTTP")
struct BenchOverHTTPTests {
    @Test(
        "the default mix runs against a real endpoint: creates, pays or closes, queries and refunds, with no errors",
        arguments: [LoadShape.closed(clients: 4), .open(perSecond: 100, maximumInFlight: 1000)]
    )
    func defaultMix(shape: LoadShape) async throws {
        try await TestSystem.run { (system: TestSystem) async throws in
            let http = BenchHTTPClient()
            defer { http.shutdown() }
            let scenario = try HTTPOrderScenario(urls: [system.client.base], client: http, createOnly: false)
            let report = await LoadRun(name: "mix", shape: shape, warmup: .milliseconds(100), duration: .seconds(1), progress: false)
                .run(scenario)
            let operations = try #require(report.json["operations"] as? [String: Any])
            #expect(report.throughput("create") > 0)
            #expect(report.throughput("query") > 0)
            #expect(operations["pay"] != nil || operations["close"] != nil)
            // An open loop on a machine too busy to keep the rate drops arrivals ("dropped", in "all"
            // too); the requests made must not fail.
            for (name, value) in operations where name != "dropped" && name != "all" {
                let errors = (value as? [String: Any])?["errors"] as? [String: Int] ?? [:]
                #expect(errors.isEmpty, "\(name) had errors \(errors)")
            }
        }
    }

    @Test("the HTTP round-trip baseline reads /healthz and records it under its own name")
    func roundTrip() async throws {
        try await TestSystem.run { (system: TestSystem) async throws in
            let http = BenchHTTPClient()
            defer { http.shutdown() }
            let base = system.client.base
            let colon = try #require(base.lastIndex(of: ":"))
            let port = try #require(Int(base[base.index(after: colon)...]))
            let scenario = HTTPRoundTripScenario(host: "127.0.0.1", port: port, client: http)
            #expect(scenario.firstOperation == HTTPRoundTripScenario.operation)
            let report = await LoadRun(name: "h", shape: .open(perSecond: 200, maximumInFlight: 50), warmup: .milliseconds(100), duration: .seconds(1), progress: false)
                .run(scenario)
            #expect(report.throughput(HTTPRoundTripScenario.operation) > 0)
            let operations = try #require(report.json["operations"] as? [String: Any])
            let roundTrip = try #require(operations[HTTPRoundTripScenario.operation] as? [String: Any])
            #expect((roundTrip["errors"] as? [String: Int] ?? [:]).isEmpty)
        }
    }

    @Test("the read comparison reads seeded orders, on the cell service and through the proxy, and finds every one")
    func reads() async throws {
        try await TestSystem.run { (system: TestSystem) async throws in
            let cell = try #require(system.system.cells[CellID(3)!])
            let ids = try await QueryScenarios.seed(cell, orders: 100)
            #expect(Set(ids).count == 100 && ids.allSatisfy { $0.cell == CellID(3)! })
            let http = BenchHTTPClient()
            defer { http.shutdown() }
            let base = system.client.base
            let colon = try #require(base.lastIndex(of: ":"))
            let port = try #require(Int(base[base.index(after: colon)...]))
            let scenarios: [any BenchScenario] = [
                DirectQueryScenario(cell: cell, orderIDs: ids), HTTPQueryScenario(host: "127.0.0.1", port: port, client: http, orderIDs: ids),
            ]
            for scenario in scenarios {
                #expect(scenario.firstOperation == QueryScenarios.operation)
                let report = await LoadRun(name: "reads", shape: .closed(clients: 4), warmup: .milliseconds(100), duration: .milliseconds(500), progress: false)
                    .run(scenario)
                #expect(report.throughput(QueryScenarios.operation) > 0)
                let operations = try #require(report.json["operations"] as? [String: Any])
                let reads = try #require(operations[QueryScenarios.operation] as? [String: Any])
                #expect((reads["errors"] as? [String: Int] ?? [:]).isEmpty, "\(type(of: scenario)): \(reads)")
            }
        }
    }

    @Test("a URL that is not http://host:port is refused before the run")
    func badURL() {
        #expect(throws: (any Error).self) { try HTTPOrderScenario(urls: ["https://x:1"], client: BenchHTTPClient(), createOnly: true) }
    }
}

/// A raw TCP server answering every request the same way: a fixed response then close, or never.
private final class FixedAnswer: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let answers: Bool

    init(answers: Bool) { self.answers = answers }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard answers else { return }
        let response = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
        let channel = context.channel
        context.writeAndFlush(NIOAny(ByteBuffer(string: response))).whenComplete { _ in channel.close(promise: nil) }
    }
}

@Suite("Load generator's HTTP client")
struct BenchHTTPClientTests {
    private func serve(answers: Bool) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(FixedAnswer(answers: answers)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    @Test("a server that closes after each response gets a new connection for the next request")
    func connectionClose() async throws {
        let server = try await serve(answers: true)
        let client = BenchHTTPClient()
        for _ in 0..<3 {
            let response = try await client.send(.GET, host: "127.0.0.1", port: server.localAddress!.port!, path: "/", json: nil, timeout: .seconds(5))
            #expect(response.status == .ok && String(buffer: response.body) == "ok" && !response.keepAlive)
        }
        client.shutdown()
        try await server.close()
    }

    @Test("a server that never answers fails the request at its deadline instead of hanging")
    func deadline() async throws {
        let server = try await serve(answers: false)
        let client = BenchHTTPClient()
        await #expect(throws: BenchHTTPClient.TimedOut.self) {
            try await client.send(.POST, host: "127.0.0.1", port: server.localAddress!.port!, path: "/", json: "{}", timeout: .milliseconds(100))
        }
        client.shutdown()
        try await server.close()
    }
}
