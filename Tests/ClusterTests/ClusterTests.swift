import Foundation
import OrderCellTestSupport
import Testing

extension LocalClusterSuites {
    /// Runs `ordercell` against a real local cluster: PostgreSQL primaries and
    /// replicas, cell services, control plane and proxies as processes.
    @Suite("Local cluster", .serialized, .localCluster(cells: 2))
    struct ClusterTests {
        var cluster: LocalClusterFixture { LocalClusterFixture.current! }

        @Test func theFoundationFlowsPassThroughTheProxies() async throws {
            let proxies = cluster.proxies
            try await OrderFlows.lifecycle(proxies[0], prefix: "cluster-p1")
            try await OrderFlows.lifecycle(proxies[1], prefix: "cluster-p2")
            try await OrderFlows.closeAndIllegalTransitions(proxies[0], prefix: "cluster")
            try await OrderFlows.racing(proxies[1], prefix: "cluster")
            try await OrderFlows.badInput(proxies[0], prefix: "cluster")
            // Late binding across the cells, through both proxies.
            let cells = try await concurrently(200, width: 8) { index in
                try await proxies[index % 2].create("m1", "cluster-spread-\(index)").json["cell_id"] as? Int ?? -1
            }
            #expect(Set(cells) == [1, 2])

            // A cell service answers ordercell itself over the cell protocol, without a proxy.
            let created = try await proxies[0].create("m1", "cluster-cell-call")
            let id = try #require(created["order_id"])
            let cell = try #require(created.json["cell_id"] as? Int)
            let service = try #require(cluster.component("cell-\(cell)-service-2"))
            let answer = try await LocalClusterFixture.ordercell(["admin", "cell", "call", "127.0.0.1:\(service.port)", "order", id, "--cell-tls", "disable"])
            #expect(answer.contains(#""order_id":"\#(id)""#) && answer.contains(#""status":"CREATED""#), "\(answer)")
            let events = try await LocalClusterFixture.ordercell(["admin", "cell", "call", "127.0.0.1:\(service.port)", "events", id, "--cell-tls", "disable"])
            #expect(events.contains("ORDER_CREATED"), "\(events)")
            // The cell's event feed, read on PostgreSQL by position: the order's creation is in it, once.
            var feed: [String] = []
            try await waitUntil(timeout: .seconds(10)) {
                feed = try await LocalClusterFixture.ordercell(
                    ["admin", "cell", "call", "127.0.0.1:\(service.port)", "feed", "--limit", "1000", "--cell-tls", "disable"]
                ).split(separator: "\n").map(String.init)
                return feed.contains { $0.contains(#""event_id":"\#(id)-1""#) }
            }
            #expect(feed.filter { $0.contains(#""event_id":"\#(id)-1""#) }.count == 1, "\(feed.suffix(3))")
            #expect(feed.allSatisfy { $0.contains(#""position":""#) && $0.contains(#""merchant_id":""#) })
        }

        @Test func proxiesAndTheControlPlaneAnswerBytesThatAreNotHTTPWithAProblem() async throws {
            // Proxy 2: proxy 1 may have been killed by another test of this suite.
            for url in [cluster.state.proxyURLs[1], cluster.state.controlURL] {
                let port = try #require(URLComponents(string: url)?.port)
                let (text, closed) = try await RawConnection.exchange(port: port, "GARBAGE\r\n\r\n", timeout: .seconds(10))
                #expect(text.hasPrefix("HTTP/1.1 400"), "\(url): \(text)")
                #expect(text.lowercased().contains("content-type: application/problem+json"), "\(url): \(text)")
                #expect(text.contains(#""code":"invalid_request""#), "\(url): \(text)")
                #expect(closed)
            }
        }

        /// Lets the load run for at least `minimum` and until `progressed` (at most 30 s more).
        static func keepLoading(for minimum: Duration, until progressed: () -> Bool) async throws {
            try await Task.sleep(for: minimum)
            let giveUp = ContinuousClock.now.advanced(by: .seconds(30))
            while !progressed(), ContinuousClock.now < giveUp { try await Task.sleep(for: .milliseconds(50)) }
        }

        /// Load through both proxies; clients retry a failed call on the other proxy.
        static func load(_ proxies: [APIClient], log: AcknowledgementLog, workers: Int, tag: String, stop: @escaping @Sendable () -> Bool) async -> Int {
            let proxies = proxies.map { APIClient(base: $0.base, adminToken: $0.adminToken, timeout: 3, http: $0.http) }
            return await withTaskGroup(of: Int.self) { group in
                for worker in 0..<workers {
                    group.addTask {
                        var createFailures = 0
                        var round = 0
                        // A client sticks to a proxy and moves to the next one when a call fails.
                        var preferred = worker % proxies.count
                        while !stop() {
                            round += 1
                            let outTradeNo = "\(tag)-\(worker)-\(round)"
                            var created: HTTPResult?
                            for _ in 0..<4 {
                                if let result = try? await proxies[preferred].create("load-\(worker)", outTradeNo), [200, 201].contains(result.status) {
                                    created = result
                                    break
                                }
                                preferred = (preferred + 1) % proxies.count
                            }
                            guard let created, let id = created["order_id"], let cell = created.json["cell_id"] as? Int else {
                                createFailures += 1
                                continue
                            }
                            log.created(id, cell: cell)
                            for _ in 0..<2 {
                                if let paid = try? await proxies[preferred].pay(id, "pay-\(outTradeNo)") {
                                    if paid.status == 200 { log.paid(id) }
                                    if paid.status == 200 || paid.status == 503 { break }
                                }
                                preferred = (preferred + 1) % proxies.count
                            }
                        }
                        return createFailures
                    }
                }
                return await group.reduce(0, +)
            }
        }

        @Test func killingAProxyAndACellServiceLosesNothingAcknowledged() async throws {
            let proxies = cluster.proxies
            let log = AcknowledgementLog()
            let stopFlag = StopFlag()
            let load = Task { await Self.load(proxies, log: log, workers: 8, tag: "kill-proxy", stop: { stopFlag.isSet }) }
            try await Task.sleep(for: .seconds(1))
            let proxy = try #require(cluster.component("proxy-1")?.pid)
            let service = try #require(cluster.component("cell-1-service-1")?.pid)
            kill(proxy, SIGKILL)
            kill(service, SIGKILL)
            let atKill = log.count
            try await Self.keepLoading(for: .seconds(2), until: { log.count >= atKill + 50 })
            stopFlag.set()
            let createFailures = await load.value
            let acknowledged = log.all
            #expect(acknowledged.count > atKill, "orders kept being taken after the kills")
            #expect(createFailures == 0, "a client retrying on the other proxy always gets its order placed")
            let missing = try await proxies[1].missing(acknowledged)
            #expect(missing.isEmpty, "lost acknowledged orders: \(missing.prefix(5))")
            // The surviving proxy tells operators which of cell 1's services it passes over, and why.
            let cells = try await proxies[1].send(.GET, "/admin/cells", admin: true)
            let cell1 = (cells.json["cells"] as? [[String: Any]])?.first { $0["cell_id"] as? Int == 1 }
            let services = try #require(cell1?["services"] as? [[String: Any]])
            #expect(services.count == 2)
            #expect(services.map { $0["passed_over"] as? Bool } == [true, false], "\(services)")
            #expect(services.map { $0["active"] as? Bool } == [false, true], "\(services)")
            #expect(services[0]["last_failure"] is String && services[0]["seconds_since_last_failure"] is Double)
            print("kill proxy + cell service: \(acknowledged.count) acknowledged orders (\(atKill) before the kills), none lost")
        }
    }
}
