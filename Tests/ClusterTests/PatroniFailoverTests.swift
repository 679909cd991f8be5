import Foundation
import LocalCluster
import OrderCellCluster
import OrderCellTestSupport
import Synchronization
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
            let control = cluster.control
            let cells = try await control.send(.GET, "/admin/cells", admin: true).json["cells"] as? [[String: Any]] ?? []
            guard let primary = (cells.first { $0["cell_id"] as? Int == cell }?["storage"] as? [String: Any])?["primary"] as? String,
                let url = URLComponents(string: primary), let port = url.port
            else { return nil }
            return "\(url.host ?? ""):\(port)"
        }

        /// The newest release's version and the authors of the releases after `version`.
        func releases(after version: Int = 0) async throws -> (newest: Int, authors: [String]) {
            let control = cluster.control
            let list = try await control.send(.GET, "/admin/releases?limit=50", admin: true).json["releases"] as? [[String: Any]] ?? []
            let newest = list.compactMap { $0["version"] as? Int }.max() ?? 0
            return (newest, list.filter { ($0["version"] as? Int ?? 0) > version }.compactMap { $0["author"] as? String })
        }

        /// Whether the PostgreSQL server on `port` is in recovery (a standby); nil when it cannot be asked.
        func inRecovery(_ port: Int) async -> Bool? {
            let output = try? await Command.run([
                Command.postgresTool("psql"), "-h", "127.0.0.1", "-p", "\(port)", "-U", "ordercell", "-d", "postgres", "-tA", "-c",
                "SET statement_timeout = '2s'; SELECT pg_is_in_recovery()",
            ])
            switch output?.split(separator: "\n").last?.trimmingCharacters(in: .whitespaces) {
            case "t": return true
            case "f": return false
            default: return nil
            }
        }

        /// Sends `signal` to a member's machine: its Patroni, its postmaster and the postmaster's children.
        /// PostgreSQL goes first, so that on SIGCONT the server runs what queued up before its Patroni can act.
        func signalMachine(_ signal: Int32, patroni: Int32, postmaster: Int32) async {
            _ = try? await Command.run(["pkill", "-\(signal)", "-P", "\(postmaster)"])
            kill(postmaster, signal)
            kill(patroni, signal)
        }

        /// `count` unpaid orders created in `cell` through `proxy`.
        func unpaidOrders(in cell: Int, count: Int, tag: String, through proxy: APIClient) async throws -> [String] {
            var found: [String] = []
            var index = 0
            while found.count < count {
                let first = index
                let batch = try await concurrently(32, width: 8) { try await proxy.create("writes", "\(tag)-\(first + $0)") }
                index += 32
                found += batch.filter { $0.json["cell_id"] as? Int == cell }.compactMap { $0["order_id"] }
                try #require(index < 20 * count, "cell \(cell) takes new orders")
            }
            return Array(found.prefix(count))
        }

        /// What a pay writer was told, as it goes: each acknowledged pay with its instant, in order, and how many refusals.
        final class PayLog: Sendable {
            private let state = Mutex<(acknowledged: [(order: String, at: ContinuousClock.Instant)], refused: Int)>(([], 0))
            var acknowledged: [(order: String, at: ContinuousClock.Instant)] { state.withLock { $0.acknowledged } }
            var refused: Int { state.withLock { $0.refused } }
            func paid(_ order: String) { state.withLock { $0.acknowledged.append((order, ContinuousClock.now)) } }
            func refusal() { state.withLock { $0.refused += 1 } }
        }

        /// Pays `orders` of one cell through the proxies, one every `pace`, each retried (on the other proxy) until
        /// it is acknowledged or `stop` says so, telling `log` as it goes.
        static func payOneAfterAnother(
            _ orders: [String], through proxies: [APIClient], pace: Duration, log: PayLog, stop: @escaping @Sendable () -> Bool
        ) async {
            let proxies = proxies.map { APIClient(base: $0.base, adminToken: $0.adminToken, timeout: 3, http: $0.http) }
            var proxy = 0
            for order in orders where !stop() {
                while !stop() {
                    if let paid = try? await proxies[proxy].pay(order, "pay-\(order)"), paid.status == 200 {
                        log.paid(order)
                        break
                    }
                    log.refusal()
                    proxy = (proxy + 1) % proxies.count
                    try? await Task.sleep(for: .milliseconds(20))
                }
                try? await Task.sleep(for: pace)
            }
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
            var acknowledgedRefunds: [String] = []
            while back == nil, ContinuousClock.now - killed < .seconds(90) {
                probe += 1
                // Creates go on meanwhile (in cell 2, and in cell 1 once it is back).
                _ = try? await proxy.create("after-kill", "probe-\(probe)")
                let read = try? await proxy.send(.GET, "/v1/orders/\(before.id)")
                let refunded = try? await proxy.refund(before.id, "r-\(probe)", amount: 1)
                if refunded?.status == 200 || refunded?.status == 201 { acknowledgedRefunds.append("r-\(probe)") }
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
            let refunds = try await proxy.send(.GET, "/v1/orders/\(before.id)/refunds").json["refunds"] as? [[String: Any]] ?? []
            let readBack = Set(refunds.compactMap { $0["refund_id"] as? String })
            #expect(!acknowledgedRefunds.isEmpty && acknowledgedRefunds.allSatisfy(readBack.contains), "every acknowledged refund reads back: \(acknowledgedRefunds) in \(readBack)")

            // The cell takes new orders again once the proxies' ejection of it lapses.
            var landedInCell1 = false
            for index in 0..<400 where !landedInCell1 {
                landedInCell1 = try await proxy.create("after", "after-failover-\(index)").json["cell_id"] as? Int == 1
                if !landedInCell1 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(landedInCell1, "cell 1 takes new orders again")

            // The release names the failover.
            let control = cluster.control
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

        // MARK: - Merchant notifications through a killed notifier and a failover

        /// Cell 1's notifier as the control plane's feed overview shows it: pending notifications and the lease holder.
        func notifier(ofCell cell: Int) async throws -> (pending: Int, holder: String?) {
            let overview = try await cluster.control.send(.GET, "/admin/feed", admin: true)
            let entry = (overview.json["cells"] as? [[String: Any]] ?? []).first { $0["cell_id"] as? Int == cell }
            return (entry?["pending"] as? Int ?? -1, entry?["lease_holder"] as? String)
        }

        /// Paid orders of merchant `notified` in `cell`: each created and paid, retried until acknowledged (through a
        /// failover), until `count` are paid or `stop` says so.
        func paidOrders(in cell: Int, count: Int, tag: String, stop: @Sendable () -> Bool = { false }) async throws -> [String] {
            let proxies = cluster.proxies.map { APIClient(base: $0.base, adminToken: $0.adminToken, timeout: 3, http: $0.http) }
            var paid: [String] = []
            var index = 0
            let giveUp = ContinuousClock.now.advanced(by: .seconds(120))
            while paid.count < count, !stop() {
                try #require(ContinuousClock.now < giveUp, "\(count) orders of cell \(cell) created and paid within 120 s (\(paid.count) so far)")
                index += 1
                guard let created = try? await proxies[index % 2].create("notified", "\(tag)-\(index)"), created.status == 201,
                    created.json["cell_id"] as? Int == cell, let order = created["order_id"]
                else {
                    try await Task.sleep(for: .milliseconds(20))
                    continue
                }
                while true {
                    try #require(ContinuousClock.now < giveUp, "order \(order) paid within 120 s")
                    if let answer = try? await proxies[index % 2].pay(order, "pay-\(order)"), answer.status == 200 { break }
                    index += 1
                    try await Task.sleep(for: .milliseconds(100))
                }
                paid.append(order)
            }
            return paid
        }

        @Test func everyNotificationArrivesThroughAKilledNotifierAndAKilledPrimary() async throws {
            _ = try await waitForSynchronousStandby(1)
            try await NotificationReceiver.run { receiver in
                let set = try await cluster.control.send(
                    .PUT, "/admin/merchants/notified/notify",
                    #"{"url":"\#(receiver.url("/n"))","allow_private_network":true,"reason":"failover test"}"#, admin: true
                )
                #expect(set.status == 200, "\(set.text)")
                let secret = try #require(set["secret"])
                // The merchant's endpoint is down: every notification waits, pending, in the cell's outbox.
                receiver.answer("/n", .fail(503))
                var paid = try await paidOrders(in: 1, count: 10, tag: "notify-before")
                try await waitUntil(timeout: .seconds(30)) { try await notifier(ofCell: 1).pending >= 10 }

                // The endpoint comes back, slowly: each attempt is under way for 1.5 s before its acknowledgement.
                let before = receiver.notifications("/n").count
                receiver.answer("/n", .acknowledgeAfter(.milliseconds(1500)))
                try await waitUntil(timeout: .seconds(10)) { receiver.notifications("/n").count > before + 1 }

                // 1. The cell service whose notifier works is SIGKILLed, with attempts under way.
                let holder = try #require(try await notifier(ofCell: 1).holder)
                let port = try #require(holder.split(separator: ":").last?.split(separator: " ").first.flatMap { Int($0) }, "\(holder)")
                let service = try #require(cluster.state.components.first { $0.kind == "cell" && $0.port == port }, "\(holder)")
                let killedService = try cluster.kill9(service.name)
                paid += try await paidOrders(in: 1, count: 5, tag: "notify-without-notifier")
                // The other cell service's notifier takes the lease over and the new events with it.
                try await waitUntil(timeout: .seconds(30)) {
                    let now = try await notifier(ofCell: 1)
                    return now.holder != nil && now.holder != holder
                }

                // 2. The cell's primary is SIGKILLed while orders are paid and notifications sent: Patroni promotes
                // the standby, the control plane re-points the cell, the notifier follows.
                let stopPaying = StopFlag()
                let paying = Task { try await paidOrders(in: 1, count: 1000, tag: "notify-during-failover", stop: { stopPaying.isSet }) }
                try await Task.sleep(for: .seconds(1))
                let old = try #require(try await leader(of: 1))
                let patroni = try #require(old.runningProcessID)
                let postmaster = try #require(old.postmasterProcessID)
                kill(patroni, SIGKILL)
                kill(postmaster, SIGKILL)
                _ = try? await Command.run(["pkill", "-9", "-P", "\(postmaster)"])
                paid += try await paidOrders(in: 1, count: 5, tag: "notify-after-failover")
                stopPaying.set()
                paid += try await paying.value

                // The merchant's endpoint is back: every paid order is notified, at least once, signed.
                receiver.answer("/n", .acknowledge)
                let expected = Set(paid.map { "\($0)-2" })
                try await waitUntil(timeout: .seconds(90)) { expected.isSubset(of: Set(receiver.notifications("/n").map(\.eventID))) }
                let received = receiver.notifications("/n")
                #expect(received.allSatisfy { $0.isSigned(with: secret) })
                #expect(Set(received.map(\.eventID)).subtracting(expected).isEmpty, "no notification of an event that did not happen")
                try await waitUntil(timeout: .seconds(30)) { try await notifier(ofCell: 1).pending == 0 }
                print(
                    "notifications through a killed notifier and a failover: \(expected.count) paid orders notified, "
                        + "\(received.count) attempts received (\(received.count - expected.count) repeats and retries)"
                )

                // The cluster as it was: the killed cell service runs again, the old primary rejoins as the standby.
                try await cluster.restart(killedService)
                _ = try await old.start()
                _ = try await waitForSynchronousStandby(1, timeout: .seconds(120))
                _ = try await cluster.control.send(.DELETE, "/admin/merchants/notified/notify", #"{"reason":"test done"}"#, admin: true)
            }
        }

        // MARK: - Planned switchover under load

        @Test func aSwitchoverUnderLoadFailsNoRetryingClient() async throws {
            let proxies = cluster.proxies
            let old = try await waitForSynchronousStandby(2)
            let log = AcknowledgementLog()
            let stopFlag = StopFlag()
            let load = Task { await ClusterTests.load(proxies, log: log, workers: 8, tag: "patroni-switch", stop: { stopFlag.isSet }) }
            try await waitUntil(timeout: .seconds(30)) { log.all.contains { $0.cell == 2 } }
            // Pays of cell 2's orders, one every 10 ms: the longest gap between two acknowledged is the write pause.
            let orders = try await unpaidOrders(in: 2, count: 1_200, tag: "switch-pays", through: proxies[0])
            let writing = StopFlag()
            let payLog = PayLog()
            let writer = Task { await Self.payOneAfterAnother(orders, through: proxies, pace: .milliseconds(10), log: payLog, stop: { writing.isSet }) }
            try await waitUntil(timeout: .seconds(10)) { log.count > 0 }
            let started = ContinuousClock.now
            let output = try await LocalClusterFixture.ordercell([
                "admin", "cell", "switchover", "2", "--control", cluster.state.controlURL, "--admin-token", cluster.state.adminToken,
            ])
            let finished = ContinuousClock.now
            let atSwitch = log.count
            try await ClusterTests.keepLoading(for: .seconds(2), until: { log.count >= atSwitch + 50 })
            try await waitUntil(timeout: .seconds(30)) { payLog.acknowledged.contains { $0.at > finished } }
            writing.set()
            stopFlag.set()
            await writer.value
            let pays = payLog.acknowledged
            let createFailures = await load.value
            // The pause: the longest gap between acknowledged pays of cell 2 that overlaps the command.
            let gaps = zip(pays, pays.dropFirst()).filter { $1.at > started && $0.at < finished }.map { $1.at - $0.at }
            let pause = try #require(gaps.max(), "pays of cell 2 were acknowledged around the switchover: \(pays.count)")
            #expect(pays.contains { $0.at > finished }, "cell 2 takes pays again after the switchover")
            #expect(output.contains("cell 2 switched over"), "\(output)")
            #expect(createFailures == 0, "no create fails for a retrying client during a switchover")
            let newLeader = try #require(try await leader(of: 2))
            #expect(newLeader.name != old.name)
            #expect(try await routedPrimary(2) == "127.0.0.1:\(newLeader.postgresPort)")
            // The release names the timeline the new leader runs on, though its member key lagged when it was published.
            let timeline = try #require(await newLeader.cluster()?.members.first { $0.name == newLeader.name }?.timeline)
            let control = cluster.control
            let releases = try await control.send(.GET, "/admin/releases?limit=5", admin: true).text
            #expect(releases.contains("Patroni leader \(newLeader.name) at 127.0.0.1:\(newLeader.postgresPort), timeline \(timeline)"), "\(releases.prefix(800))")
            for (order, _) in pays { log.created(order, cell: 2); log.paid(order) }
            let missing = try await proxies[1].missing(log.all)
            #expect(missing.isEmpty, "\(missing.prefix(5))")
            _ = try await waitForSynchronousStandby(2)
            print(
                "Patroni switchover of cell 2 under load: \(output.split(separator: "\n").last ?? ""); write pause (longest gap between acknowledged pays of cell 2) "
                    + "\(String(format: "%.2f", MerchantKeyClusterTests.secondsValue(pause))) s, command \(MerchantKeyClusterTests.seconds(finished - started)) s; \(log.count) acknowledged, none lost"
            )
        }

        // MARK: - An operator's forced failover

        @Test func anOperatorsForcedFailoverIsAuditedAndLeavesASynchronousStandby() async throws {
            let old = try await waitForSynchronousStandby(2)
            let (before, _) = try await releases()
            let output = try await LocalClusterFixture.ordercell([
                "admin", "cell", "failover", "2", "--control", cluster.state.controlURL, "--admin-token", cluster.state.adminToken,
            ])
            #expect(output.contains("cell 2 failed over"), "\(output)")
            let newLeader = try #require(try await leader(of: 2))
            #expect(newLeader.name != old.name)
            #expect(try await routedPrimary(2) == "127.0.0.1:\(newLeader.postgresPort)")
            // Audited: the release that moved the cell is the operator's, and says what was asked.
            let control = cluster.control
            let list = try await control.send(.GET, "/admin/releases?limit=50", admin: true).json["releases"] as? [[String: Any]] ?? []
            let moved = list.filter { ($0["version"] as? Int ?? 0) > before && ($0["reason"] as? String ?? "").contains("Patroni leader \(newLeader.name)") }
            #expect(moved.contains { $0["author"] as? String == "admin" && ($0["reason"] as? String ?? "").contains("failover requested by admin") }, "\(moved)")
            // The old primary rejoins as the new leader's synchronous standby; pg_stat_replication says so.
            let leaderAfter = try await waitForSynchronousStandby(2, timeout: .seconds(120))
            #expect(leaderAfter.name == newLeader.name)
            try await waitUntil(timeout: .seconds(60)) {
                if try await replication(on: leaderAfter.postgresPort).contains([old.name, "sync"]) { return true }
                try await Task.sleep(for: .milliseconds(250))
                return false
            }
        }

        // MARK: - SIGSTOP of a cell's primary: frozen, not dead

        @Test func aFrozenPrimaryAcknowledgesNothingAfterItsStandbyTookOverAndRejoins() async throws {
            let proxies = cluster.proxies
            let old = try await waitForSynchronousStandby(1)
            let orders = try await unpaidOrders(in: 1, count: 200, tag: "freeze-pays", through: proxies[0])
            #expect(try await proxies[0].pay(orders[0], "pay-\(orders[0])").status == 200, "cell 1 takes pays before the freeze")

            // The control plane is frozen first: the cell services stay on the old primary however long it takes, as
            // a cell service that has not learnt the failover would.
            let control = try #require(try cluster.currentComponent("control")?.pid)
            kill(control, SIGSTOP)
            defer { kill(control, SIGCONT) }
            let patroni = try #require(old.runningProcessID)
            let postmaster = try #require(old.postmasterProcessID)
            let frozen = ContinuousClock.now
            await signalMachine(SIGSTOP, patroni: patroni, postmaster: postmaster)
            let thawing = StopFlag()
            defer { if !thawing.isSet { Task { await signalMachine(SIGCONT, patroni: patroni, postmaster: postmaster) } } }

            // Pays of cell 1's orders go on through both proxies from now on, each retried until acknowledged.
            let writing = StopFlag()
            let payLog = PayLog()
            let writer = Task {
                await Self.payOneAfterAnother(Array(orders.dropFirst()), through: proxies, pace: .milliseconds(20), log: payLog, stop: { writing.isSet })
            }

            // Its standby takes the leader lock once the frozen leader's lapses (ttl).
            var newLeader: PatroniMember?
            try await waitUntil(timeout: .seconds(90)) {
                newLeader = try await leader(of: 1)
                if let newLeader, newLeader.name != old.name, await inRecovery(newLeader.postgresPort) == false { return true }
                try await Task.sleep(for: .milliseconds(250))
                return false
            }
            let takeover = ContinuousClock.now - frozen
            let promoted = try #require(newLeader)

            // The frozen machine wakes up, its cell services still routed to it, pays arriving.
            let services = try LocalClusterRunner.state(in: cluster.directory).components.filter { $0.kind == "cell" && $0.cell == 1 }
            let logOffsets = services.map { (try? FileManager.default.attributesOfItem(atPath: $0.log)[.size] as? Int) ?? 0 }
            thawing.set()
            await signalMachine(SIGCONT, patroni: patroni, postmaster: postmaster)
            let thawed = ContinuousClock.now
            // Patroni finds its lock gone and demotes the server; until then what it runs waits for a synchronous standby that follows someone else.
            try await waitUntil(timeout: .seconds(60)) {
                if await inRecovery(old.postgresPort) == true { return true }
                try await Task.sleep(for: .milliseconds(100))
                return false
            }
            let demoted = ContinuousClock.now - thawed
            // Writes keep coming to the old server for a while yet, through cell services that still route there
            // (the control plane, frozen, published nothing).
            try await Task.sleep(for: .seconds(3))
            let routedAway = ContinuousClock.now
            // They did: the cell services' logs name the old server in the failures of those writes.
            let failuresThere = zip(services, logOffsets).flatMap { service, offset -> [Substring] in
                guard let handle = FileHandle(forReadingAtPath: service.log) else { return [] }
                defer { try? handle.close() }
                try? handle.seek(toOffset: UInt64(offset))
                let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
                return text.split(separator: "\n").filter { $0.contains("127.0.0.1:\(old.postgresPort)") && $0.contains("error") }
            }
            #expect(!failuresThere.isEmpty, "writes reached the old server after its thaw and failed there")

            // The control plane wakes up, follows Patroni, and the cell's services move to the new leader.
            kill(control, SIGCONT)
            try await waitUntil(timeout: .seconds(30)) {
                if try await routedPrimary(1) == "127.0.0.1:\(promoted.postgresPort)" { return true }
                try await Task.sleep(for: .milliseconds(100))
                return false
            }
            // Pays go on until cell 1 takes them again from its new leader.
            let resumed = ContinuousClock.now
            try await waitUntil(timeout: .seconds(60)) { payLog.acknowledged.contains { $0.at > resumed } }
            writing.set()
            await writer.value
            let pays = payLog.acknowledged

            // No split brain: from the freeze until the cell was routed to its new leader, no pay was acknowledged —
            // the frozen server could commit nothing its promoted standby lacks (synchronous replication), and after
            // its demotion it took no write at all.
            let duringFreeze = pays.filter { $0.at > frozen && $0.at < routedAway }
            #expect(duringFreeze.isEmpty, "pays acknowledged while cell 1 was routed to its old primary: \(duringFreeze.map(\.order).prefix(5))")
            let log = AcknowledgementLog()
            log.created(orders[0], cell: 1)
            log.paid(orders[0])
            for (order, _) in pays {
                log.created(order, cell: 1)
                log.paid(order)
            }
            var missing: [String] = []
            for _ in 0..<50 {
                missing = try await proxies[1].missing(log.all)
                if missing.isEmpty { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(missing.isEmpty, "every acknowledged pay reads back from the new leader: \(missing.prefix(5))")

            // The old primary rejoins as the synchronous standby of the new leader (pg_rewind), nobody acting.
            let leaderAfter = try await waitForSynchronousStandby(1, timeout: .seconds(120))
            #expect(leaderAfter.name == promoted.name)
            var roles: [String] = []
            for _ in 0..<240 {
                roles = (await promoted.cluster())?.members.map { "\($0.name) \($0.role) \($0.state)" } ?? []
                if roles.contains("\(old.name) sync_standby streaming") { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(roles.contains("\(old.name) sync_standby streaming"), "\(roles)")
            print(
                "Patroni, frozen primary: its standby led \(MerchantKeyClusterTests.seconds(takeover)) s after SIGSTOP; after SIGCONT the old server was a standby "
                    + "within \(String(format: "%.2f", MerchantKeyClusterTests.secondsValue(demoted))) s and acknowledged no write (\(failuresThere.count) failures there "
                    + "in the cell services' logs, \(payLog.refused) pays refused meanwhile); \(pays.count) pays acknowledged, none lost"
            )
        }

        // MARK: - etcd members lost

        /// The cluster's etcd as `cluster up` made it.
        func etcd() throws -> EtcdCluster {
            let members = cluster.state.components.filter { $0.kind == "etcd" }
            let first = try #require(members.first?.dataDirectory)
            return EtcdCluster(
                directory: URL(fileURLWithPath: first).deletingLastPathComponent().path,
                logDirectory: URL(fileURLWithPath: members[0].log).deletingLastPathComponent().path, clientPorts: members.map(\.port)
            )
        }

        @Test func losingOneEtcdMemberChangesNothingAndLosingTheQuorumPromotesNoOne() async throws {
            let proxies = cluster.proxies
            let leaders = [try await waitForSynchronousStandby(1), try await waitForSynchronousStandby(2)]
            let standbys = try (1...2).flatMap { try members(of: $0) }.filter { member in !leaders.contains { $0.name == member.name } }
            let etcd = try etcd()
            #expect(etcd.members.map(\.clientPort) == cluster.state.components.filter { $0.kind == "etcd" }.map(\.port))
            let (releasesBefore, _) = try await releases()
            let log = AcknowledgementLog()
            let stopFlag = StopFlag()
            let load = Task { await ClusterTests.load(proxies, log: log, workers: 4, tag: "etcd", stop: { stopFlag.isSet }) }
            defer { stopFlag.set() }
            try await waitUntil(timeout: .seconds(30)) { Set(log.all.filter(\.paid).map(\.cell)) == [1, 2] }

            /// Every cell's leader is its leader still, and its other members are standbys.
            func nothingPromoted() async -> [String] {
                var wrong: [String] = []
                for leader in leaders where await inRecovery(leader.postgresPort) != false { wrong.append("\(leader.name) is not a primary") }
                for standby in standbys where await inRecovery(standby.postgresPort) != true { wrong.append("\(standby.name) is not a standby") }
                return wrong
            }

            // One member down, for longer than the leader ttl: etcd keeps its quorum, nothing changes.
            let first = try #require(etcd.members[0].runningProcessID)
            kill(first, SIGKILL)
            var atLoss = log.count
            try await ClusterTests.keepLoading(for: .seconds(25), until: { log.count >= atLoss + 100 })
            let afterOneLost = await nothingPromoted()
            #expect(afterOneLost.isEmpty, "\(afterOneLost)")
            for leader in leaders {
                #expect(try await self.leader(of: leader.cell)?.name == leader.name, "Patroni, on two etcd members, keeps cell \(leader.cell)'s leader")
            }

            // The quorum lost, for longer than the ttl: Patroni's failsafe mode keeps each leader (its members all
            // answer it), nobody is promoted, and every cell keeps taking orders and pays.
            let second = try #require(etcd.members[1].runningProcessID)
            kill(second, SIGKILL)
            let lost = ContinuousClock.now
            let before = Set(log.all.map(\.id))
            atLoss = log.count
            try await ClusterTests.keepLoading(for: .seconds(30), until: { log.count >= atLoss + 100 })
            let afterQuorumLost = await nothingPromoted()
            #expect(afterQuorumLost.isEmpty, "\(afterQuorumLost)")
            let duringLoss = log.all.filter { !before.contains($0.id) }
            for cell in 1...2 {
                #expect(duringLoss.contains { $0.cell == cell && $0.paid }, "cell \(cell) took orders and pays without the etcd quorum")
            }
            let withoutQuorum = ContinuousClock.now - lost

            // etcd comes back: the same leaders, still synchronous, and no failover release.
            _ = try await etcd.start(report: { _ in })
            for leader in leaders {
                let after = try await waitForSynchronousStandby(leader.cell)
                #expect(after.name == leader.name)
            }
            stopFlag.set()
            let createFailures = await load.value
            #expect(createFailures == 0, "a client retrying never fails to create while etcd loses members: \(createFailures) failures")
            let (_, authors) = try await releases(after: releasesBefore)
            #expect(!authors.contains("failover"), "no failover was published: \(authors)")
            let missing = try await proxies[1].missing(log.all)
            #expect(missing.isEmpty, "\(missing.prefix(5))")
            print(
                "etcd: one member down, then the quorum lost for \(MerchantKeyClusterTests.seconds(withoutQuorum)) s: the same leaders throughout, "
                    + "\(log.count) orders acknowledged (\(duringLoss.count) without a quorum), none lost"
            )
        }
    }
}
