import Foundation
import LocalCluster
import OrderCellCluster
import OrderCellTestSupport
import Testing

extension LocalClusterSuites {
    /// Routing changes reach every proxy; proxies keep serving
    /// while the control plane is down, and a proxy restarted meanwhile starts
    /// from its routing snapshot and says how stale it is.
    @Suite("Control plane down", .serialized, .localCluster(cells: 1))
    struct ControlPlaneDownTests {
        var cluster: LocalClusterFixture { LocalClusterFixture.current! }

        /// Publishes changes through the control plane's admin API (and `ordercell
        /// admin`) and measures when every proxy reports the new release.
        func measurePropagation() async throws -> [Double] {
            let control = cluster.control
            var measured: [Double] = []
            // The operator's command line publishes through the same API.
            let output = try await LocalClusterFixture.ordercell([
                "admin", "cell", "set", "1", "--weight", "99", "--reason", "propagation drill", "--control", cluster.state.controlURL,
                "--admin-token", cluster.state.adminToken,
            ])
            #expect(output.contains("published routing release") && output.contains("cells[1].weight: 100 → 99"), "\(output)")
            for round in 1...10 {
                let started = ContinuousClock.now
                let changed = try await control.send(.PATCH, "/admin/cells/1", #"{"weight":\#(100 + round),"reason":"propagation drill"}"#, admin: true)
                try #require(changed.status == 200, "\(changed.text)")
                let version = try #require(Int(try await control.send(.GET, "/admin/routing", admin: true)["version"] ?? ""))
                var pending = Set(cluster.proxies.indices)
                while !pending.isEmpty, ContinuousClock.now - started < .seconds(10) {
                    for index in pending {
                        let status = try await cluster.proxies[index].send(.GET, "/admin/proxy", admin: true)
                        if Int(status["routing_version"] ?? "") ?? 0 >= version { pending.remove(index) }
                    }
                    if !pending.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
                }
                #expect(pending.isEmpty, "every proxy installed release \(version)")
                let elapsed = ContinuousClock.now - started
                measured.append(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)
            }
            return measured
        }

        @Test func routingChangesReachEveryProxyAndProxiesOutliveTheControlPlane() async throws {
            let proxies = cluster.proxies
            let propagation = try await measurePropagation().sorted()
            // A figure, not a bound: how fast is measured, not asserted (docs/performance.md); that every change arrives is.
            print("routing change → every proxy (ms, 10 changes): \(propagation.map { String(format: "%.0f", $0) })")
            #expect(try await proxies[0].create("m1", "before-control-down").status == 201)

            // A blacklist made through one proxy goes through the control plane to the other.
            let listed = try await proxies[0].send(.PUT, "/admin/cells/1/blacklist", #"{"reason":"drill"}"#, admin: true)
            #expect(listed.status == 200)
            var refused = false
            for attempt in 0..<50 where !refused {
                let created = try await proxies[1].create("m1", "blacklisted-\(attempt)")
                refused = created.status == 503 && created.code == "no_cell_available"
                if !refused { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(refused, "the other proxy no longer places orders in the blacklisted (only) cell")
            #expect(try await proxies[1].send(.DELETE, "/admin/cells/1/blacklist", admin: true).status == 200)
            var accepted = false
            for attempt in 0..<50 where !accepted {
                accepted = try await proxies[0].create("m1", "unblacklisted-\(attempt)").status == 201
                if !accepted { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(accepted)

            let control = try #require(cluster.component("control")?.pid)
            kill(control, SIGKILL)
            try await Task.sleep(for: .milliseconds(300))

            // The running proxies serve with the release they have.
            for (index, proxy) in proxies.enumerated() {
                let created = try await proxy.create("m1", "control-down-\(index)")
                #expect(created.status == 201)
                #expect(try await proxy.send(.GET, "/v1/orders/\(try #require(created["order_id"]))").status == 200)
            }

            // A proxy restarted now has no control plane to ask: it starts from its snapshot.
            let first = try #require(cluster.component("proxy-1"))
            let firstPID = try #require(first.pid)
            kill(firstPID, SIGKILL)
            for _ in 0..<100 where TCPProbe.accepts(port: first.port) { try await Task.sleep(for: .milliseconds(50)) }
            let snapshot = "\(cluster.directory)/proxy-1.routing.json"
            #expect(FileManager.default.fileExists(atPath: snapshot))
            let log = "\(cluster.directory)/logs/proxy-1-restarted.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: LocalClusterFixture.binary)
            process.arguments = [
                "proxy", "--port", "\(first.port)", "--control", cluster.state.controlURL, "--control-token", cluster.state.followerToken ?? "",
                "--admin-token", cluster.state.adminToken, "--routing-snapshot", snapshot, "--cell-tls", "disable", "--http-tls", "disable", "--unsigned-requests",
            ]
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.standardError = process.standardOutput
            try ProcessLaunch.run(process)
            defer { kill(process.processIdentifier, SIGKILL) }
            var listening = false
            for _ in 0..<300 where !listening {
                listening = TCPProbe.accepts(port: first.port)
                if !listening { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(listening, "the restarted proxy listens: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            let created = try await proxies[0].create("m1", "after-restart-from-snapshot")
            #expect(created.status == 201)
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(text.contains("starting from the routing snapshot"), "the proxy says it runs on its snapshot, and how old it is")
            let status = try await proxies[0].send(.GET, "/admin/proxy", admin: true)
            #expect(status["routing_source"] == "snapshot", "\(status.text)")
            #expect(status["release_received_at"] != nil && status["last_control_contact"] == nil)
            #expect(try await proxies[1].send(.GET, "/admin/proxy", admin: true)["routing_source"] == "control_plane")
        }
    }
}
