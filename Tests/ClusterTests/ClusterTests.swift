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
            let proxies = proxies.map { APIClient(base: $0.base, adminToken: $0.adminToken, timeout: 3) }
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

        @Test func killingACellPrimaryThenFailingOverLosesNothingAcknowledged() async throws {
            // Proxy 1 may have been killed by the previous test; this one drives proxy 2.
            let proxy = cluster.proxies[1]
            let log = AcknowledgementLog()
            let stopFlag = StopFlag()
            let load = Task { await Self.load([proxy], log: log, workers: 8, tag: "kill-primary", stop: { stopFlag.isSet }) }
            try await Task.sleep(for: .seconds(1.5))
            let primary = try #require(cluster.component("cell-1-primary"))
            let pid = try #require(Int32((try String(contentsOfFile: primary.dataDirectory! + "/postmaster.pid", encoding: .utf8)).split(separator: "\n")[0]))
            kill(pid, SIGKILL)
            let atKill = log.count
            try await Self.keepLoading(for: .seconds(3), until: { log.count >= atKill + 50 })
            stopFlag.set()
            let createFailures = await load.value
            #expect(createFailures == 0, "creates keep succeeding in the other cells while cell 1 is down")
            // While the primary is down: strong reads of its orders fail, eventual reads come from the replica.
            if let early = log.all.first(where: { $0.cell == 1 }) {
                let strong = try await proxy.send(.GET, "/v1/orders/\(early.id)")
                #expect(strong.status == 503 && strong.code == "cell_unavailable")
                let eventual = try await proxy.send(.GET, "/v1/orders/\(early.id)?consistency=eventual")
                #expect(eventual.status == 200 && eventual["order_id"] == early.id)
            }
            #expect(log.all.filter { $0.cell == 2 }.count > 0)
            #expect(log.count > atKill, "orders kept being taken while cell 1 was down")

            let output = try await LocalClusterFixture.ordercell([
                "admin", "cell", "failover", "1", "--control", cluster.state.controlURL, "--admin-token", cluster.state.adminToken,
            ])
            #expect(output.contains("cell 1 failed over"))

            // Every acknowledged order and payment is there, read from the promoted replica.
            let acknowledged = log.all
            var missing: [String] = []
            for _ in 0..<50 {
                missing = try await proxy.missing(acknowledged)
                if missing.isEmpty { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(missing.isEmpty, "lost acknowledged orders or payments: \(missing.prefix(5))")
            let inCell1 = acknowledged.filter { $0.cell == 1 }
            #expect(!inCell1.isEmpty)

            // The failed-over cell serves again: its orders take payments, and it takes new orders.
            // "Not acknowledged as paid" is not "unpaid": a payment whose answer was lost
            // when the primary died may have committed on the replica. Pay one that reads unpaid.
            var unpaid: AcknowledgementLog.Entry?
            var paidUnacknowledged = 0
            for entry in inCell1 where !entry.paid && unpaid == nil {
                switch try await proxy.send(.GET, "/v1/orders/\(entry.id)")["status"] {
                case "CREATED": unpaid = entry
                case "PAID": paidUnacknowledged += 1
                default: break
                }
            }
            if let unpaid {
                let paid = try await proxy.pay(unpaid.id, "after-failover")
                #expect(paid.status == 200, "paying \(unpaid.id) after the failover: \(paid.status) \(paid.code ?? "")")
            }
            var landedInCell1 = false
            for index in 0..<400 where !landedInCell1 {
                let created = try await proxy.create("after", "after-failover-\(index)")
                landedInCell1 = created.json["cell_id"] as? Int == 1
                if !landedInCell1 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(landedInCell1, "cell 1 takes new orders again once the proxy's ejection lapses")
            print("kill primary + failover: \(acknowledged.count) acknowledged (\(inCell1.count) in cell 1), none lost; \(paidUnacknowledged) paid without an acknowledgement")
        }
    }
}
