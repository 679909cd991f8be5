import Foundation
import LocalCluster
import OrderCellCluster
import OrderCellTestSupport
import Synchronization
import Testing

extension LocalClusterSuites {
    /// SIGTERM — what a deployment's process manager sends — of a cell
    /// service and of a proxy under load: each stops taking work, answers
    /// what it accepted, closes its connections, then exits.
    @Suite("Graceful stop", .serialized, .localCluster(cells: 2))
    struct GracefulStopTests {
        var cluster: LocalClusterFixture { LocalClusterFixture.current! }

        /// What the load's clients saw: answers by kind, and calls that got no answer.
        final class Outcomes: Sendable {
            let serverErrors = Mutex<[String]>([])
            let unanswered = Mutex(0)
            let answered = Mutex(0)
        }

        @Test func sigtermOfACellServiceAndAProxyUnderLoadAnswersWhatTheyAcceptedAndClosesTheirConnections() async throws {
            let proxies = cluster.proxies.map { APIClient(base: $0.base, adminToken: $0.adminToken, timeout: 5, http: $0.http) }
            let log = AcknowledgementLog()
            let outcomes = Outcomes()
            let stopFlag = StopFlag()
            let primary = try await cluster.primary(cell: 1)
            let service = try #require(cluster.component("cell-1-service-1")?.pid)
            let proxy = try #require(cluster.component("proxy-1")?.pid)
            let serviceSessions = "ordercell-cell 1 pid \(service)"
            #expect(try await sessions(named: serviceSessions, on: primary) > 0, "the cell service's pool is connected")

            let load = Task {
                await withTaskGroup(of: Void.self) { group in
                    for worker in 0..<8 {
                        group.addTask {
                            var round = 0
                            var preferred = worker % proxies.count
                            while !stopFlag.isSet {
                                round += 1
                                let outTradeNo = "term-\(worker)-\(round)"
                                var created: HTTPResult?
                                for _ in 0..<4 where created == nil {
                                    do {
                                        let result = try await proxies[preferred].create("term-\(worker)", outTradeNo)
                                        outcomes.answered.withLock { $0 += 1 }
                                        if result.status >= 500 { outcomes.serverErrors.withLock { $0.append("create \(result.status) \(result.code ?? "")") } }
                                        if [200, 201].contains(result.status) { created = result }
                                    } catch {
                                        // Refused or closed by the proxy being stopped: try the other one.
                                        outcomes.unanswered.withLock { $0 += 1 }
                                        preferred = (preferred + 1) % proxies.count
                                    }
                                }
                                guard let created, let id = created["order_id"], let cell = created.json["cell_id"] as? Int else { continue }
                                log.created(id, cell: cell)
                                for _ in 0..<4 {
                                    guard let paid = try? await proxies[preferred].pay(id, "pay-\(outTradeNo)") else {
                                        outcomes.unanswered.withLock { $0 += 1 }
                                        preferred = (preferred + 1) % proxies.count
                                        continue
                                    }
                                    outcomes.answered.withLock { $0 += 1 }
                                    if paid.status >= 500 { outcomes.serverErrors.withLock { $0.append("pay \(paid.status) \(paid.code ?? "")") } }
                                    if paid.status == 200 { log.paid(id) }
                                    break
                                }
                            }
                        }
                    }
                }
            }
            try await Task.sleep(for: .seconds(1.5))
            let atStop = log.count
            kill(service, SIGTERM)
            kill(proxy, SIGTERM)
            // Both drain and exit; a process that hangs in its shutdown fails here.
            let giveUp = ContinuousClock.now.advanced(by: .seconds(30))
            while kill(service, 0) == 0 || kill(proxy, 0) == 0, ContinuousClock.now < giveUp { try await Task.sleep(for: .milliseconds(50)) }
            #expect(kill(service, 0) != 0, "the cell service exited after SIGTERM")
            #expect(kill(proxy, 0) != 0, "the proxy exited after SIGTERM")
            try await ClusterTests.keepLoading(for: .seconds(1), until: { log.count >= atStop + 50 })
            stopFlag.set()
            await load.value

            let serverErrors = outcomes.serverErrors.withLock { $0 }
            #expect(serverErrors.isEmpty, "every call was answered, none with a server error: \(serverErrors.prefix(5))")
            #expect(log.count > atStop, "orders kept being taken while the two stopped")
            let acknowledged = log.all
            let missing = try await proxies[1].missing(acknowledged)
            #expect(missing.isEmpty, "lost acknowledged orders or payments: \(missing.prefix(5))")

            // Each says, as its last word, that it stopped in order; the cell service's sessions are gone from its primary.
            let serviceLog = try String(contentsOfFile: try #require(cluster.component("cell-1-service-1")).log, encoding: .utf8)
            #expect(serviceLog.contains("cell service stopped: calls under way answered, storage connections closed"))
            let proxyLog = try String(contentsOfFile: try #require(cluster.component("proxy-1")).log, encoding: .utf8)
            #expect(proxyLog.contains("proxy stopped: requests under way answered, cell connections closed"))
            #expect(try await sessions(named: serviceSessions, on: primary) == 0)
            print(
                "SIGTERM of a cell service and a proxy under load: \(acknowledged.count) acknowledged (\(atStop) before), none lost; "
                    + "\(outcomes.answered.withLock { $0 }) answers, none 5xx; \(outcomes.unanswered.withLock { $0 }) calls refused or cut by the stopping proxy, retried on the other"
            )
        }

        /// The sessions of `applicationName` on a cluster's PostgreSQL server.
        func sessions(named applicationName: String, on server: LocalClusterState.Component) async throws -> Int {
            let output = try await Command.run([
                Command.postgresTool("psql"), "-h", "127.0.0.1", "-p", "\(server.port)", "-U", "ordercell", "-d", "postgres", "-tAc",
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = '\(applicationName)'",
            ])
            return try #require(Int(output.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
    }
}
