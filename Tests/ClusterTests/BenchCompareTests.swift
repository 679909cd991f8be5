import Foundation
import Testing

extension LocalClusterSuites {
    /// `ordercell bench --compare` against a real local cluster: every baseline
    /// runs, pgbench among them, and the proxies' ratio to each is printed.
    @Suite("Bench against a local cluster", .serialized, .localCluster(cells: 1))
    struct BenchCompareTests {
        var cluster: LocalClusterFixture { LocalClusterFixture.current! }

        @Test("bench --compare runs the raw INSERT, pgbench, the cell's store, one cell service and the proxies, and prints each ratio")
        func compareRunsEveryBaseline() async throws {
            let primary = try await cluster.primary(cell: 1)
            let service = try #require(cluster.component("cell-1-service-1"))
            // An open loop at a low rate: what is tested is that every run and ratio
            // is there; at full speed it would starve the tests running beside it.
            let output = try await LocalClusterFixture.ordercell(
                ["bench", "--compare"] + cluster.state.proxyURLs.flatMap { ["--url", $0] } + [
                    "--postgres", "postgres://ordercell@127.0.0.1:\(primary.port)/cell_1", "--postgres-tls", "disable",
                    "--cell-service", "127.0.0.1:\(service.port)", "--cell-tls", "disable", "--clients", "4", "--rate", "50", "--duration", "2", "--warmup", "1",
                ]
            )
            for run in ["c. raw INSERT", "p. pgbench", "a. the cell's PostgreSQL store", "d. one cell service over the cell protocol", "b. proxy over HTTP"] {
                // The run's report: "<name>…: <seconds> s measured", then the create line with a count of successes and no error.
                let header = try #require(
                    output.range(of: "\(NSRegularExpression.escapedPattern(for: run))[^\n]*: [0-9.]+ s measured\n", options: .regularExpression),
                    "no report of \(run) in:\n\(output)"
                )
                let report = output[header.upperBound...]
                let create = try #require(report.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("create") })
                let fields = create.split(separator: " ")
                #expect((Double(fields[1]) ?? 0) > 0, "\(run) created orders: \(create)")
                #expect(fields.last == "0", "\(run) had no errors: \(create)")
                if run != "b. proxy over HTTP" { #expect(output.contains("vs \(run)"), "a ratio to \(run)") }
            }
        }

        @Test("bench --compare-notifier runs the mix without a notifier, with acknowledging and with hanging merchants, and prints ratios and lag")
        func compareNotifierRunsEveryVariant() async throws {
            // Embedded systems of its own (the cluster is not used); a low open-loop rate, as above.
            let output = try await LocalClusterFixture.ordercell(
                ["bench", "--compare-notifier", "--cells", "2", "--clients", "4", "--rate", "50", "--duration", "2", "--warmup", "1"]
            )
            for variant in ["no notifier", "notifier, merchants acknowledge", "notifier, every merchant endpoint hangs"] {
                for pair in [1, 2] {
                    let header = try #require(
                        output.range(of: "\(variant), pair \(pair)[^\n]*: [0-9.]+ s measured\n", options: .regularExpression), "no report of \(variant) in:\n\(output)"
                    )
                    let pay = try #require(output[header.upperBound...].split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("pay") })
                    #expect(pay.split(separator: " ").last == "0", "\(variant), pair \(pair) paid without errors: \(pay)")
                }
            }
            #expect(output.contains("with notifiers vs without"), "\(output)")
            for variant in ["merchants acknowledge", "every merchant endpoint hangs"] {
                for operation in ["create", "pay"] {
                    #expect(
                        output.range(of: "notifier, \(variant) +\(operation) +throughput ×[0-9.]+, p99", options: .regularExpression) != nil,
                        "a ratio of \(operation) with \(variant): \(output)"
                    )
                }
            }
            #expect(output.contains("notifier lag behind the cells' feeds"), "\(output)")
        }
    }
}
