import ArgumentParser
import CellProtocol
import CellRouting
import CellService
import CellStorage
import ControlPlane
import Foundation
import Logging
import OrderCellBench
import OrderCellEmbedded
import OrderCellPlatform
import OrderModel
import OrderProxy
import PostgresNIO
import ServiceLifecycle

/// `ordercell bench`: a load generator for any OrderCell endpoint, and
/// same-run baselines that show what each layer costs.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load an OrderCell endpoint and report throughput, errors and latency percentiles.",
        discussion: """
            Closed loop by default (--clients concurrent clients); --rate N offers N iterations a second \
            whatever the latency (open loop, latencies from the intended start). The default mix creates \
            an order, pays (95 %) or closes (5 %) it, reads it and refunds 10 % of the paid ones.
            --compare runs the same create-only workload straight on one cell's store, on one cell service, \
            and through the proxy, in one run, and prints the ratios. Without --url it starts an embedded \
            system of its own; with --url and --postgres it compares a cluster's proxy with the same INSERT \
            on that cell primary, sent by PostgresNIO and by pgbench (PostgreSQL's own C client, prepared \
            statements; skipped with a note when pgbench is not installed). --compare --workload query (embedded) does the same with reads of orders \
            it created first: the proxy hop without the commit's fsync in the figures.
            """
    )

    @Option(name: .customLong("url"), help: "Proxy URL(s); clients spread over them.") var urls: [String] = []
    @Option(help: "Concurrent clients (closed loop).") var clients = 16
    @Option(help: "Iterations per second (open loop).") var rate: Double?
    @Option(help: "Seconds measured.") var duration = 10
    @Option(help: "Seconds of warm-up, not measured.") var warmup = 2
    @Option(
        help: "Workload: mix (create, pay/close, query, refund), create, round-trip (GET /healthz: the bare HTTP round trip), or query (with --compare, embedded: reads by id)."
    )
    var workload = "mix"
    @Flag(help: "Run the same-run baselines and print the ratios.") var compare = false
    @Flag(
        help: "Embedded: creates through the proxy unsigned, then signed (docs/security.md), alternately in two pairs, with the ratio; and the cost of one signature check."
    )
    var compareSigning = false
    @Flag(
        help: "Embedded: the default mix with no notifier, with notifiers whose merchants acknowledge, and with every merchant endpoint hanging, in turn in two rounds; the ratios and the notifiers' lag behind the feed."
    )
    var compareNotifier = false
    @Option(help: "With --compare and --url: a cell primary, postgres://user@host:port/database, for the raw INSERT and pgbench baselines.")
    var postgres: String?
    @Option(help: "TLS to --postgres: require or disable (loopback development clusters).") var postgresTLS = "require"
    @Option(help: "With --compare and --url: one cell service of cell 1, host:port (the cell protocol), for a baseline without the proxy.")
    var cellService: String?
    @OptionGroup var tls: TLSOptions
    @Option(help: "Cells of the embedded system --compare starts.") var cells = 4
    @Flag(help: "Print the results as JSON.") var json = false
    @OptionGroup var executor: EmbeddedExecutorTakeoverOption

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        // HTTPS to a cluster's proxies when their URLs say so, trusting --tls-ca (the cluster's CA).
        let http = urls.contains { $0.hasPrefix("https://") }
            ? BenchHTTPClient(tls: try BenchHTTPClient.tlsContext(trusting: tls.tlsCA)) : BenchHTTPClient()
        var reports: [BenchReport] = []
        var signatureCost: (check: Double, sign: Double)?
        var notifierLag: [String: NotifierComparison.LagSample]?
        do {
            if compareNotifier {
                guard urls.isEmpty, !compare, !compareSigning else {
                    throw ValidationError("--compare-notifier starts embedded systems of its own: no --url, --compare or --compare-signing")
                }
                let comparison = NotifierComparison(cells: cells) { name, scenario in await load(name, scenario) }
                let outcome = try await comparison.run(http)
                reports = outcome.reports
                notifierLag = outcome.lag
            } else if compareSigning {
                guard urls.isEmpty, !compare else { throw ValidationError("--compare-signing starts embedded systems of its own: no --url, no --compare") }
                reports = try await compareSigned(http)
                signatureCost = try SignatureCost.measure()
            } else if compare {
                guard workload != "query" || urls.isEmpty else { throw ValidationError("--compare --workload query runs embedded only (no --url)") }
                reports = urls.isEmpty ? try await compareEmbedded(http) : try await compareCluster(http)
            } else {
                guard !urls.isEmpty else { throw ValidationError("give --url (a proxy), or --compare") }
                switch workload {
                case "mix", "create":
                    reports.append(await load("proxy", try HTTPOrderScenario(urls: urls, client: http, createOnly: workload == "create")))
                case "round-trip":
                    let endpoint = try HTTPOrderScenario(urls: urls, client: http, createOnly: true).endpoints[0]
                    reports.append(await load("HTTP round trip", HTTPRoundTripScenario(host: endpoint.host, port: endpoint.port, client: http)))
                default:
                    throw ValidationError(
                        workload == "query" ? "--workload query runs with --compare (embedded, no --url)" : "--workload is mix, create, round-trip or query"
                    )
                }
            }
        } catch {
            http.shutdown()
            throw error
        }
        http.shutdown()
        if json {
            let data = try JSONSerialization.data(withJSONObject: ["runs": reports.map(\.json), "clients": clients], options: [.prettyPrinted, .sortedKeys])
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        } else {
            for report in reports { say(report.text) }
            if let notifierLag {
                say(NotifierComparison.summary(reports, lag: notifierLag))
            } else if compareSigning {
                say(signingRatio(reports, cost: signatureCost))
            } else if compare, let proxied = reports.last, reports.count >= 2 {
                say(ratios(proxied, reports.dropLast(), operation: workload == "query" ? QueryScenarios.operation : "create"))
            }
        }
    }

    private func load(_ name: String, _ scenario: some BenchScenario) async -> BenchReport {
        let shape: LoadShape = rate.map { .open(perSecond: $0, maximumInFlight: max(clients, 1) * 64) } ?? .closed(clients: clients)
        return await LoadRun(name: name, shape: shape, warmup: .seconds(warmup), duration: .seconds(duration), progress: !json).run(scenario)
    }

    private func ratios(_ proxied: BenchReport, _ baselines: ArraySlice<BenchReport>, operation: String) -> String {
        var lines = ["", "through the proxy vs each baseline (\(operation)):"]
        for baseline in baselines {
            let roundTrip = HTTPRoundTripScenario.operation
            if baseline.recorded(roundTrip) {
                lines.append(
                    baseline.throughput(roundTrip) > 0
                        ? "  the HTTP round trip alone (\(baseline.name.prefix(2))) takes p50 \(String(format: "%.2f", baseline.percentile(50, roundTrip))) ms, p99 \(String(format: "%.2f", baseline.percentile(99, roundTrip))) ms"
                        : "  the HTTP round trip alone (\(baseline.name.prefix(2))) never succeeded: see its errors above"
                )
                continue
            }
            guard baseline.throughput(operation) > 0 else {
                lines.append("  vs \(baseline.name): no \(operation) succeeded, no ratio")
                continue
            }
            let ratio = proxied.throughput(operation) / max(baseline.throughput(operation), 0.001)
            let p50 = proxied.percentile(50, operation) - baseline.percentile(50, operation)
            let p99 = proxied.percentile(99, operation) - baseline.percentile(99, operation)
            lines.append(
                "  vs \(baseline.name.padding(toLength: 48, withPad: " ", startingAt: 0)) throughput ×\(String(format: "%.2f", ratio)), added p50 \(String(format: "%+.2f", p50)) ms, added p99 \(String(format: "%+.2f", p99)) ms"
            )
        }
        return lines.joined(separator: "\n")
    }

    /// Embedded: one cell's SQLite store, one cell service, then the proxy over HTTP into all cells.
    private func compareEmbedded(_ http: BenchHTTPClient) async throws -> [BenchReport] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var logger = Logger(label: "ordercell.bench")
        logger.logLevel = .error
        let system = try await EmbeddedSystem.open(
            // No health checker: its synthetic orders would be load of their own in every run.
            EmbeddedConfiguration(dataDirectory: directory.path, port: 0, layout: .singlePartition(cells: cells), healthCheck: nil), logger: logger
        )
        let firstCell = try requireCell(system.cells[CellID(unchecked: 1)])
        // The system runs (its cells' checkpoints, the HTTP server) for every run, the direct ones included.
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let group = ServiceGroup(services: system.services { continuation.yield($0) }, logger: logger)
        let server = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw ValidationError("the embedded server did not start") }
        var reports: [BenchReport] = []
        let orderIDs = workload == "query" ? try await QueryScenarios.seed(firstCell, orders: 5_000) : []
        if workload == "query" {
            reports.append(await load("a2. one cell service, reads", DirectQueryScenario(cell: firstCell, orderIDs: orderIDs)))
        } else {
            reports.append(await load("a1. one cell's SQLite store", DirectStoreScenario(store: firstCell.store, cell: firstCell.cell)))
            let held = Set(system.proxy.routingTable.indexSlots.slots(of: firstCell.cell))
            reports.append(await load("a2. one cell service", DirectCellScenario(cell: firstCell, slots: held)))
        }
        reports.append(await load("h. HTTP round trip alone (GET /healthz)", HTTPRoundTripScenario(host: "127.0.0.1", port: port, client: http)))
        if workload == "query" {
            reports.append(
                await load("b. proxy over HTTP, reads", HTTPQueryScenario(host: "127.0.0.1", port: port, client: http, orderIDs: orderIDs))
            )
        } else {
            reports.append(
                await load("b. proxy over HTTP, \(cells) cells", try HTTPOrderScenario(urls: ["http://127.0.0.1:\(port)"], client: http, createOnly: true))
            )
        }
        await group.triggerGracefulShutdown()
        _ = try? await server.value
        return reports
    }

    /// Embedded, two systems alike but for signed requests: creates through each proxy, alternately (unsigned,
    /// signed, unsigned, signed), so that a drift of the machine falls on both.
    private func compareSigned(_ http: BenchHTTPClient) async throws -> [BenchReport] {
        var logger = Logger(label: "ordercell.bench")
        logger.logLevel = .error
        var systems: [(EmbeddedSystem, ServiceGroup, Task<Void, any Error>, Int, URL)] = []
        for signed in [false, true] {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-bench-\(UUID().uuidString)")
            let system = try await EmbeddedSystem.open(
                EmbeddedConfiguration(
                    dataDirectory: directory.path, port: 0, layout: .singlePartition(cells: cells), healthCheck: nil, requireSignedRequests: signed
                ),
                logger: logger
            )
            let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
            let group = ServiceGroup(services: system.services { continuation.yield($0) }, logger: logger)
            let server = Task { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw ValidationError("the embedded server did not start") }
            systems.append((system, group, server, port, directory))
        }
        defer { for (_, _, _, _, directory) in systems { try? FileManager.default.removeItem(at: directory) } }
        // The scenario's merchants, bench-0 … bench-31, each with its key, as merchants sign their own creates.
        var keys: [String: (id: String, secret: String)] = [:]
        for number in 0..<32 {
            let made = try await systems[1].0.accessKeys.create(.merchant, merchantID: "bench-\(number)", author: "bench", reason: "bench --compare-signing")
            keys["bench-\(number)"] = (made.key.id, made.secret)
        }
        let signing = BenchSigning(merchantKeys: keys, paymentService: nil)
        var reports: [BenchReport] = []
        for pair in 1...2 {
            reports.append(
                await load("unsigned, pair \(pair)", try HTTPOrderScenario(urls: ["http://127.0.0.1:\(systems[0].3)"], client: http, createOnly: true))
            )
            reports.append(
                await load(
                    "signed, pair \(pair)",
                    try HTTPOrderScenario(urls: ["http://127.0.0.1:\(systems[1].3)"], client: http, createOnly: true, signing: signing)
                )
            )
        }
        for (_, group, server, _, _) in systems {
            await group.triggerGracefulShutdown()
            _ = try? await server.value
        }
        return reports
    }

    private func signingRatio(_ reports: [BenchReport], cost: (check: Double, sign: Double)?) -> String {
        let unsigned = reports.filter { $0.name.hasPrefix("unsigned") }.map { $0.throughput("create") }
        let signed = reports.filter { $0.name.hasPrefix("signed") }.map { $0.throughput("create") }
        var lines = ["", "signed vs unsigned creates through the proxy (same run):"]
        for (pair, (u, s)) in zip(unsigned, signed).enumerated() {
            lines.append("  pair \(pair + 1): \(String(format: "%.0f", u)) → \(String(format: "%.0f", s)) creates/s, ×\(String(format: "%.2f", s / max(u, 0.001)))")
        }
        lines.append(
            "  sums: ×\(String(format: "%.2f", signed.reduce(0, +) / max(unsigned.reduce(0, +), 0.001))) (the client's signing runs on the same cores)"
        )
        if let cost {
            lines.append("  one signature check alone (header, key, SHA-256 of the body, HMAC-SHA256, nonce): \(String(format: "%.1f", cost.check)) µs on one core")
            lines.append("  one signature made alone (the client's: nonce, SHA-256 of the body, HMAC-SHA256): \(String(format: "%.1f", cost.sign)) µs on one core")
        }
        return lines.joined(separator: "\n")
    }

    /// Cluster: the same INSERT on a cell primary, the cell's store, then the proxy.
    private func compareCluster(_ http: BenchHTTPClient) async throws -> [BenchReport] {
        var reports: [BenchReport] = []
        var primary: PostgresClient?
        var primaryRun: Task<Void, Never>?
        defer { primaryRun?.cancel() }
        /// Every run starts from a checkpoint on the cell primary, so that none
        /// pays for the WAL an earlier one wrote (the proxy run comes last).
        func settle() async {
            guard let primary else { return }
            do {
                // A checkpoint after a run may take longer than the statement bound the runs use.
                try await withDeadline(.seconds(120)) {
                    try await primary.withConnection { connection in
                        let logger = Logger(label: "ordercell.bench")
                        try await connection.query("SET statement_timeout = 0", logger: logger)
                        try await connection.query("CHECKPOINT", logger: logger)
                        try await connection.query("RESET statement_timeout", logger: logger)
                    }
                }
            } catch {
                FileHandle.standardError.write(Data("note: CHECKPOINT on the primary failed (\(String(reflecting: error))); runs start unsettled\n".utf8))
            }
        }
        if let postgres {
            let endpoint: PostgresEndpoint
            do { endpoint = try PostgresEndpoint(parsing: postgres) } catch { throw ValidationError("--postgres: \(error.detail)") }
            guard let tls = PostgresTLSMode(rawValue: postgresTLS) else { throw ValidationError("--postgres-tls must be require or disable") }
            // The same server-side bound on every statement as the cell store's (a hung server ends the run's calls).
            let cellSettings = PostgresCellConfiguration(primary: endpoint, tls: tls, maximumConnections: clients)
            var configuration = PostgresClient.Configuration(
                host: endpoint.host, port: endpoint.port, username: endpoint.username, password: endpoint.password, database: endpoint.database,
                tls: tls.clientTLS
            )
            configuration.options.additionalStartupParameters = [
                ("statement_timeout", "\(cellSettings.statementTimeout.wholeMilliseconds)"), ("application_name", "ordercell-bench"),
            ]
            configuration.options.maximumConnections = clients
            let client = PostgresClient(configuration: configuration)
            primary = client
            primaryRun = Task { await client.run() }
            do {
                try await withDeadline(.seconds(10)) { try await RawPostgresScenario.prepare(client) }
            } catch {
                let why = await PostgresServerProbe.diagnose(
                    endpoint, tls: tls, flag: "--postgres-tls", failure: error, logger: Logger(label: "ordercell.bench")
                )
                throw ValidationError("--postgres could not be used: \(why)")
            }
            await settle()
            reports.append(await load("c. raw INSERT on the primary", RawPostgresScenario(client: client)))
            await settle()
            let pgbench = PgbenchRun(
                host: endpoint.host, port: endpoint.port, username: endpoint.username, password: endpoint.password, database: endpoint.database,
                sslMode: tls == .require ? "require" : "disable", clients: clients, rate: rate, warmup: .seconds(warmup), duration: .seconds(duration)
            )
            do {
                reports.append(try await pgbench.run(name: "p. pgbench, the same INSERT (C, prepared)"))
            } catch {
                FileHandle.standardError.write(Data("note: pgbench could not run (\(error)); no pgbench baseline\n".utf8))
            }
            reports.append(
                try await PostgresOrderStore.withStore(cellSettings) { store in
                    await settle()
                    return await load("a. the cell's PostgreSQL store", DirectStoreScenario(store: store, cell: CellID(unchecked: 9999)))
                }
            )
        }
        if let cellService {
            let endpoint: CellServiceEndpoint
            do { endpoint = try CellServiceEndpoint(parsing: cellService) } catch { throw ValidationError("--cell-service: \(error.detail)") }
            let client = CellServiceClient(
                cell: CellID(unchecked: 1), endpoints: [endpoint], tls: try tls.cellClientTLS(), timeout: .seconds(2)
            )
            await settle()
            // As a proxy makes most creates: bound in the cell of the key's slot (a benchmark's one-cell cluster holds
            // every slot); a key of a slot the cell does not hold is created as the two-call path does.
            reports.append(
                await load(
                    "d. one cell service over the cell protocol",
                    DirectCellScenario { request in
                        do {
                            if case .order(let result) = try await client.createBound(request, attempt: UInt64.random(in: 1...UInt64.max)) {
                                return result
                            }
                        } catch let refusal as OrderError where refusal.code == .indexUnavailable {}
                        return try await client.create(request)
                    }
                )
            )
            client.shutdown()
        }
        await settle()
        reports.append(await load("b. proxy over HTTP", try HTTPOrderScenario(urls: urls, client: http, createOnly: true)))
        return reports
    }
}

private func requireCell<T>(_ value: T?) throws -> T {
    guard let value else { throw ValidationError("cell 1 is missing") }
    return value
}
