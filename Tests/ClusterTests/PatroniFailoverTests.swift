import Foundation
import LocalCluster
import OrderCellCluster
import OrderCellTestSupport
import Testing

extension LocalClusterSuites {
    /// Each cell's PostgreSQL servers are a Patroni cluster on etcd: the
    /// primary fails over by itself, fenced by Patroni's leader lock, and
    /// the control plane moves the cell's services to the new leader.
    /// Real processes: etcd, Patroni, PostgreSQL, and OrderCell's own.
    @Suite("Cell failover by Patroni", .serialized, .localCluster(cells: 2))
    struct PatroniFailoverTests {
        var cluster: LocalClusterFixture { LocalClusterFixture.current! }

        /// The cell's Patroni members as `cluster up` made them.
        func members(of cell: Int) throws -> [PatroniMember] {
            LocalClusterRunner.patroniMembers(in: try LocalClusterRunner.state(in: cluster.directory)).filter { $0.cell == cell }
        }

        /// The member holding cell `cell`'s leader lock and running as the primary, asked of any member that answers.
        func leader(of cell: Int) async throws -> PatroniMember? {
            let members = try members(of: cell)
            for member in members {
                guard let view = await member.cluster() else { continue }
                if let name = view.members.first(where: { $0.role == "leader" && $0.state == "running" })?.name {
                    return members.first { $0.name == name }
                }
            }
            return nil
        }

        /// `pg_stat_replication` of the server on `port`: application name and sync state of each standby.
        func replication(on port: Int) async throws -> [[String]] {
            let output = try await Command.run([
                Command.postgresTool("psql"), "-h", "127.0.0.1", "-p", "\(port)", "-U", "ordercell", "-d", "postgres", "-tA", "-F", "|", "-c",
                "SELECT application_name, sync_state FROM pg_stat_replication ORDER BY 1",
            ])
            return output.split(separator: "\n").map { $0.split(separator: "|").map(String.init) }
        }

        /// Waits until cell `cell` has a leader whose `pg_stat_replication` shows a synchronous standby; returns the leader.
        func waitForSynchronousStandby(_ cell: Int, timeout: Duration = .seconds(90)) async throws -> PatroniMember {
            let giveUp = ContinuousClock.now.advanced(by: timeout)
            while ContinuousClock.now < giveUp {
                if let leader = try await leader(of: cell), let rows = try? await replication(on: leader.postgresPort),
                    rows.contains(where: { $0.count == 2 && $0[1] == "sync" })
                {
                    return leader
                }
                try await Task.sleep(for: .milliseconds(250))
            }
            throw NoSynchronousStandby(cell: cell, timeout: timeout)
        }

        struct NoSynchronousStandby: Error, CustomStringConvertible {
            var cell: Int
            var timeout: Duration
            var description: String { "cell \(cell) had no leader with a synchronous standby within \(timeout)" }
        }

        /// The primary of `cell` in the control plane's routing table, host:port.
        func routedPrimary(_ cell: Int) async throws -> String? {
            let control = APIClient(base: cluster.state.controlURL, adminToken: cluster.state.adminToken)
            let cells = try await control.send(.GET, "/admin/cells", admin: true).json["cells"] as? [[String: Any]] ?? []
            guard let primary = (cells.first { $0["cell_id"] as? Int == cell }?["storage"] as? [String: Any])?["primary"] as? String,
                let url = URLComponents(string: primary), let port = url.port
            else { return nil }
            return "\(url.host ?? ""):\(port)"
        }

        // MARK: - After cluster up

        @Test func everyCellHasASynchronousStandbyAndIsRoutedToItsLeader() async throws {
            for cell in 1...cluster.state.cells {
                let leader = try await waitForSynchronousStandby(cell)
                let rows = try await replication(on: leader.postgresPort)
                #expect(rows.count == 1 && rows.first?.last == "sync", "cell \(cell): \(rows)")
                #expect(try await routedPrimary(cell) == "127.0.0.1:\(leader.postgresPort)")
            }
        }

        // MARK: - SIGKILL of a cell's primary, nobody acting

        @Test func killingACellsPrimaryFailsItOverWithoutAnOperator() async throws {
            let proxies = cluster.proxies
            let old = try #require(try await leader(of: 1))
            let log = AcknowledgementLog()
            let stopFlag = StopFlag()
            let load = Task { await ClusterTests.load(proxies, log: log, workers: 8, tag: "patroni-kill", stop: { stopFlag.isSet }) }
            try await waitUntil(timeout: .seconds(30)) { log.all.contains { $0.cell == 1 && $0.paid } }
            let before = try #require(log.all.first { $0.cell == 1 && $0.paid })

            // The machine of the primary dies: Patroni and PostgreSQL with it, no shutdown.
            let patroni = try #require(old.runningProcessID)
            let postmaster = try #require(old.postmasterProcessID)
            let killed = ContinuousClock.now
            kill(patroni, SIGKILL)
            kill(postmaster, SIGKILL)
            _ = try? await Command.run(["pkill", "-9", "-P", "\(postmaster)"])

            // Until a standby leads: strong reads of the cell's orders answer 503, eventual reads come from the standby.
            let proxy = proxies[1]
            // Calls under way when the server died may still have been answered; the next ones meet the dead primary.
            var strong = try await proxy.send(.GET, "/v1/orders/\(before.id)")
            for _ in 0..<50 where strong.status != 503 {
                try await Task.sleep(for: .milliseconds(100))
                strong = try await proxy.send(.GET, "/v1/orders/\(before.id)")
            }
            #expect(strong.status == 503 && strong.code == "cell_unavailable", "\(strong.status) \(strong.text)")
            #expect(try await routedPrimary(1) == "127.0.0.1:\(old.postgresPort)", "refused while the cell was still routed to its dead primary")
            // A call on a connection the dead primary's sessions took down may fail once; a client's retry is served.
            var eventual = try await proxy.send(.GET, "/v1/orders/\(before.id)?consistency=eventual")
            for _ in 0..<10 where eventual.status != 200 {
                try await Task.sleep(for: .milliseconds(300))
                eventual = try await proxy.send(.GET, "/v1/orders/\(before.id)?consistency=eventual")
            }
            #expect(eventual.status == 200 && eventual["order_id"] == before.id, "\(eventual.status) \(eventual.text)")

            // The cell's orders answer strong reads, pays and refunds again once a standby leads; nobody acts.
            var back: Duration?
            var probe = 0
            while back == nil, ContinuousClock.now - killed < .seconds(90) {
                probe += 1
                // Creates go on meanwhile (in cell 2, and in cell 1 once it is back).
                _ = try? await proxy.create("after-kill", "probe-\(probe)")
                let read = try? await proxy.send(.GET, "/v1/orders/\(before.id)")
                let refunded = try? await proxy.refund(before.id, "r-\(probe)", amount: 1)
                var paid = true
                if let unpaid = log.all.first(where: { $0.cell == 1 && !$0.paid }) {
                    // Not acknowledged as paid is not unpaid: a pay whose answer was lost in the kill may have committed.
                    let status = (try? await proxy.pay(unpaid.id, "pay-after-\(probe)"))?.status
                    paid = status == 200 || status == 409
                }
                if read?.status == 200, read?["status"] != nil, refunded?.status == 200 || refunded?.status == 201, paid {
                    back = ContinuousClock.now - killed
                } else {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            let recovery = try #require(back, "cell 1's strong reads, pays and refunds answer again within 90 s")
            stopFlag.set()
            let createFailures = await load.value
            #expect(createFailures == 0, "a client retrying never fails to create: \(createFailures) failures")
            let newLeader = try #require(try await leader(of: 1))
            #expect(newLeader.name != old.name)
            #expect(try await routedPrimary(1) == "127.0.0.1:\(newLeader.postgresPort)", "the control plane routes cell 1 to its new leader")
            let acknowledged = log.all
            var missing: [String] = []
            for _ in 0..<50 {
                missing = try await proxy.missing(acknowledged)
                if missing.isEmpty { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(missing.isEmpty, "every acknowledged order and payment reads back: \(missing.prefix(5))")

            // The cell takes new orders again once the proxies' ejection of it lapses.
            var landedInCell1 = false
            for index in 0..<400 where !landedInCell1 {
                landedInCell1 = try await proxy.create("after", "after-failover-\(index)").json["cell_id"] as? Int == 1
                if !landedInCell1 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(landedInCell1, "cell 1 takes new orders again")

            // The release names the failover.
            let control = APIClient(base: cluster.state.controlURL, adminToken: cluster.state.adminToken)
            let releases = try await control.send(.GET, "/admin/releases?limit=5", admin: true).text
            #expect(releases.contains("\"failover\"") && releases.contains("Patroni leader \(newLeader.name)"), "\(releases.prefix(600))")

            // The old primary's machine comes back: it rejoins as a synchronous standby (pg_rewind), nobody acting.
            let restarted = ContinuousClock.now
            _ = try await old.start()
            let leaderAfter = try await waitForSynchronousStandby(1, timeout: .seconds(120))
            #expect(leaderAfter.name == newLeader.name)
            // Patroni names it the synchronous standby (its sync key) a moment after PostgreSQL reports it so.
            var roles: [String] = []
            for _ in 0..<120 {
                roles = (await newLeader.cluster())?.members.map { "\($0.name) \($0.role) \($0.state)" } ?? []
                if roles.contains("\(old.name) sync_standby streaming") { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(roles.contains("\(old.name) sync_standby streaming"), "\(roles)")
            let rejoin = ContinuousClock.now - restarted
            print(
                "Patroni failover: cell 1's strong reads, pays and refunds answer \(MerchantKeyClusterTests.seconds(recovery)) s after SIGKILL of its primary; "
                    + "\(acknowledged.count) acknowledged orders, none lost; the old primary is a sync standby \(MerchantKeyClusterTests.seconds(rejoin)) s after its Patroni restarts"
            )
        }

        // MARK: - Planned switchover under load

        @Test func aSwitchoverUnderLoadFailsNoRetryingClient() async throws {
            let proxies = cluster.proxies
            let old = try await waitForSynchronousStandby(2)
            let log = AcknowledgementLog()
            let stopFlag = StopFlag()
            let load = Task { await ClusterTests.load(proxies, log: log, workers: 8, tag: "patroni-switch", stop: { stopFlag.isSet }) }
            try await waitUntil(timeout: .seconds(30)) { log.all.contains { $0.cell == 2 } }
            let output = try await LocalClusterFixture.ordercell([
                "admin", "cell", "switchover", "2", "--control", cluster.state.controlURL, "--admin-token", cluster.state.adminToken,
            ])
            let atSwitch = log.count
            try await ClusterTests.keepLoading(for: .seconds(2), until: { log.count >= atSwitch + 50 })
            stopFlag.set()
            let createFailures = await load.value
            #expect(output.contains("cell 2 switched over"), "\(output)")
            #expect(createFailures == 0, "no create fails for a retrying client during a switchover")
            let newLeader = try #require(try await leader(of: 2))
            #expect(newLeader.name != old.name)
            #expect(try await routedPrimary(2) == "127.0.0.1:\(newLeader.postgresPort)")
            let missing = try await proxies[1].missing(log.all)
            #expect(missing.isEmpty, "\(missing.prefix(5))")
            _ = try await waitForSynchronousStandby(2)
            print("Patroni switchover of cell 2 under load: \(output.split(separator: "\n").last ?? ""); \(log.count) acknowledged, none lost")
        }
    }
}
