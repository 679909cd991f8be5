import Foundation
import LocalCluster
import OrderCellCluster
import OrderCellTestSupport
import OrderModel
import Synchronization
import Testing

extension LocalClusterSuites {
    /// `(merchant_id, out_trade_no)` unique across all cells, against a real
    /// local cluster: two proxies, two cells of PostgreSQL primary + replica
    /// and two cell services each, the control plane running the
    /// merchant-key reconciler (grace 5 s, every 5 s).
    ///
    /// The tests run in this order (the suite is serialized): the SIGKILL
    /// test leaves proxy 1 and a service of cell 1 dead, so the tests after
    /// it drive the surviving proxy only.
    @Suite("Merchant keys in a cluster", .serialized, .localCluster(cells: 2))
    struct MerchantKeyClusterTests {
        var cluster: LocalClusterFixture { LocalClusterFixture.current! }

        // MARK: - 1. Racing creates over two proxies

        @Test func racingCreatesOverTwoProxiesMakeExactlyOneOrderPerKey() async throws {
            let merchant = "mk-race"
            // Each key is sent 10 times: 10 000 creates of 1 000 keys (about a minute in a debug
            // build on two cores); ORDERCELL_MERCHANT_KEY_RACE_KEYS=N runs N keys instead.
            let keys = ProcessInfo.processInfo.environment["ORDERCELL_MERCHANT_KEY_RACE_KEYS"].flatMap { Int($0) } ?? 1000
            let sends = keys * 10
            let proxies = cluster.proxies.map { APIClient(base: $0.base, adminToken: $0.adminToken, timeout: 30, http: $0.http) }
            try #require(proxies.count == 2)
            /// One send: its key, its amount, the proxy it went through, and what came back.
            struct Answer: Sendable {
                var key: Int
                var amount: Int64
                var proxy: Int
                var status: Int
                var id: String?
                var code: String?
            }
            let next = SendCounter()
            let started = ContinuousClock.now
            // 8 clients, 4 per proxy, taking sends in order: the ~10 sends of a key
            // (key = send / 10) are in flight at once, over both proxies.
            let (answers, unanswered) = await withTaskGroup(of: ([Answer], [String]).self) { group in
                for client in 0..<8 {
                    group.addTask {
                        var answers: [Answer] = []
                        var unanswered: [String] = []
                        let proxy = client % 2
                        while true {
                            let send = next.value.add(1, ordering: .relaxed).oldValue
                            guard send < sends else { break }
                            let key = send / 10
                            // Every 10th send of a key asks for another amount.
                            let amount: Int64 = send % 10 == 7 ? 2000 : 1000
                            do {
                                let answer = try await proxies[proxy].create(merchant, "race-\(key)", amount: amount)
                                answers.append(Answer(key: key, amount: amount, proxy: proxy, status: answer.status, id: answer["order_id"], code: answer.code))
                            } catch {
                                unanswered.append("race-\(key) via proxy \(proxy + 1): \(error)")
                            }
                        }
                        return (answers, unanswered)
                    }
                }
                var all: ([Answer], [String]) = ([], [])
                for await (answers, unanswered) in group {
                    all.0 += answers
                    all.1 += unanswered
                }
                return all
            }
            let elapsed = ContinuousClock.now - started
            #expect(unanswered.isEmpty, "every create was answered: \(unanswered.prefix(5))")

            var orders: [Int: Set<String>] = [:]
            var unexpected: [String] = []
            for answer in answers {
                switch answer.status {
                case 200, 201:
                    orders[answer.key, default: []].insert(answer.id ?? "?")
                case 409 where answer.code == "out_trade_no_conflict":
                    break
                default:
                    unexpected.append("race-\(answer.key) amount \(answer.amount) via proxy \(answer.proxy + 1): \(answer.status) \(answer.code ?? "")")
                }
            }
            let created = answers.filter { $0.status == 201 }.count
            let replayed = answers.filter { $0.status == 200 }.count
            let conflicts = answers.filter { $0.status == 409 }.count
            #expect(unexpected.isEmpty, "every answer is 201, 200 or 409 out_trade_no_conflict: \(unexpected.count) others, \(unexpected.prefix(5))")
            #expect(answers.filter { $0.status >= 500 }.isEmpty, "no 5xx")
            let split = orders.filter { $0.value.count != 1 }
            #expect(orders.count == keys, "every key has an order: \(orders.count) of \(keys)")
            #expect(split.isEmpty, "exactly one order id per key: \(split.count) keys with more, e.g. \(split.prefix(3).map { "race-\($0.key): \($0.value.sorted())" })")
            // At most one 201 per key: a create that committed but whose answer came too late is answered 200 by its retry.
            let createdPerKey = Dictionary(grouping: answers.filter { $0.status == 201 }, by: \.key).filter { $0.value.count > 1 }
            #expect(createdPerKey.isEmpty && created <= keys, "at most one 201 per key: \(created) for \(keys) keys, twice for \(createdPerKey.keys.prefix(3))")

            // The cells hold exactly one order per key: the lookup by out_trade_no finds it...
            let lookups = try await concurrently(keys, width: 8) { key in
                try await proxies[key % 2].send(.GET, "/v1/orders?merchant_id=\(merchant)&out_trade_no=race-\(key)")
            }
            var lookupMismatches: [String] = []
            for (key, found) in lookups.enumerated() where found.status != 200 || orders[key]?.contains(found["order_id"] ?? "") != true {
                lookupMismatches.append("race-\(key): \(found.status) \(found["order_id"] ?? found.code ?? "") (answered \(orders[key]?.sorted() ?? []))")
            }
            #expect(lookupMismatches.isEmpty, "the lookup by out_trade_no answers the key's order: \(lookupMismatches.prefix(5))")
            // ...and the cells' primaries hold exactly `keys` orders of the merchant, and `keys` index entries.
            var stored = 0
            var indexed = 0
            for primary in try await cellPrimaries() {
                stored += try await count("SELECT count(*) FROM orders WHERE merchant_id = '\(merchant)'", on: primary)
                indexed += try await count("SELECT count(*) FROM merchant_keys WHERE merchant_id = '\(merchant)'", on: primary)
            }
            #expect(stored == keys, "the cells hold exactly one order per key: \(stored)")
            #expect(indexed == keys, "the index holds exactly one entry per key: \(indexed)")
            print(
                "merchant keys, racing over two proxies: \(answers.count) creates of \(keys) keys in \(Self.seconds(elapsed)) s "
                    + "(\(Int(Double(answers.count) / Self.secondsValue(elapsed))) creates/s): \(created) created, \(replayed) replayed, \(conflicts) conflicts; "
                    + "\(stored) orders and \(indexed) index entries in the cells"
            )
        }

        /// The next send of the racing clients.
        final class SendCounter: Sendable {
            let value = Atomic(0)
        }

        // MARK: - 2. A drained cell's repeat through the other proxy

        @Test func aRepeatThroughTheOtherProxyMeetsTheFirstOrderInADrainedCell() async throws {
            let proxies = cluster.proxies
            try #require(proxies.count == 2)
            let control = cluster.control
            let first = try await proxies[0].create("mk-drain", "drained-1")
            try #require(first.status == 201, "\(first.text)")
            let id = try #require(first["order_id"])
            let cell = try #require(first.json["cell_id"] as? Int)

            let drained = try await control.send(.PATCH, "/admin/cells/\(cell)", #"{"weight":0,"reason":"merchant-key drill: drain"}"#, admin: true)
            try #require(drained.status == 200, "\(drained.text)")
            let version = try #require(Int(drained["version"] ?? ""))
            var failure: (any Error)?
            do {
                try await waitForRouting(version, on: proxies[1])
                // The drain took effect at proxy 2: its new orders go to the other cell...
                for index in 0..<10 {
                    let other = try await proxies[1].create("mk-drain", "fresh-\(index)")
                    #expect(other.status == 201 && other.json["cell_id"] as? Int != cell, "a new order avoids drained cell \(cell): \(other.text)")
                }
                // ...but the repeat meets the first order there, never a second one elsewhere.
                for _ in 0..<3 {
                    let repeated = try await proxies[1].create("mk-drain", "drained-1")
                    #expect(repeated.status == 200 && repeated["order_id"] == id, "\(repeated.text)")
                    #expect(repeated.json["cell_id"] as? Int == cell)
                }
                let differs = try await proxies[1].create("mk-drain", "drained-1", amount: 999)
                #expect(differs.status == 409 && differs.code == "out_trade_no_conflict", "\(differs.text)")
                for consistency in ["strong", "eventual"] {
                    let found = try await proxies[1].send(.GET, "/v1/orders?merchant_id=mk-drain&out_trade_no=drained-1&consistency=\(consistency)")
                    #expect(found.status == 200 && found["order_id"] == id, "\(consistency): \(found.text)")
                }
            } catch {
                failure = error
            }
            // Undone whatever happened, for the tests after this one.
            let undone = try await control.send(.PATCH, "/admin/cells/\(cell)", #"{"weight":100,"reason":"merchant-key drill: undo the drain"}"#, admin: true)
            #expect(undone.status == 200, "\(undone.text)")
            if let restored = Int(undone["version"] ?? "") {
                for proxy in proxies { try await waitForRouting(restored, on: proxy) }
            }
            if let failure { throw failure }
            print("merchant keys, drained cell \(cell): the repeat through the other proxy met order \(id) (200), another amount 409")
        }

        // MARK: - 3. SIGKILL at each step of a create

        /// Where a create is held when its proxy and its cell's services are killed.
        enum CreateStep: String, CaseIterable, Sendable {
            /// Its first call, to the slot's cell, waits there before running: nothing is reserved yet.
            case beforeTheReservation
            /// The slot's cell is drained, so the key is bound there for the other cell, whose create waits before running.
            case betweenReservationAndOrder
            /// Bind and create committed in the slot's cell, whose answer is held back.
            case betweenOrderAndAnswer
        }

        /// For each step: creates through proxy 1 are held at that step by a drill fault, then proxy 1 and both
        /// services of the cell holding them are SIGKILLed and started again, and the client's retry goes through
        /// either proxy. Every key ends with exactly one order, which its retry answers and which pays once.
        @Test func aSigkillAtEachStepOfACreateLeavesEachKeyOneOrder() async throws {
            let merchant = "mk-step"
            let control = cluster.control
            for step in CreateStep.allCases {
                let proxies = cluster.proxies.map { APIClient(base: $0.base, adminToken: $0.adminToken, timeout: 10, http: $0.http) }
                // Keys whose slot is held by cell 1 (slots are dealt 0-127 to cell 1, 128-255 to cell 2).
                var keys: [String] = []
                var index = 0
                while keys.count < 6 {
                    let key = "\(step.rawValue)-\(index)"
                    if MerchantKey(merchantID: merchant, outTradeNo: key).indexSlot < 128 { keys.append(key) }
                    index += 1
                }
                let list = keys.map { "'\($0)'" }.joined(separator: ",")
                let held: (cell: Int, fault: String)
                switch step {
                case .beforeTheReservation: held = (1, #"{"mode":"latency","latency_ms":5000}"#)
                case .betweenReservationAndOrder: held = (2, #"{"mode":"latency","latency_ms":5000}"#)
                case .betweenOrderAndAnswer: held = (1, #"{"mode":"late_answer","latency_ms":5000}"#)
                }
                if step == .betweenReservationAndOrder {
                    let drained = try await control.send(.PATCH, "/admin/cells/1", #"{"weight":0,"reason":"merchant-key drill: bind in cell 1, create in cell 2"}"#, admin: true)
                    let version = try #require(Int(drained["version"] ?? ""), "\(drained.text)")
                    for proxy in proxies { try await waitForRouting(version, on: proxy) }
                }
                #expect(try await proxies[1].send(.PUT, "/admin/cells/\(held.cell)/fault", held.fault, admin: true).status == 200)
                let inFlight = keys.map { key in Task { try? await proxies[0].create(merchant, key) } }
                // The index and the orders as the step has them when the kills come.
                let primaries = try await cellPrimaries()
                let ordersMade = "SELECT count(*) FROM orders WHERE merchant_id = '\(merchant)' AND out_trade_no IN (\(list))"
                let reservedForCell2 = "SELECT count(*) FROM merchant_keys WHERE merchant_id = '\(merchant)' AND out_trade_no IN (\(list)) AND owner_cell = 2 AND holder IS NULL"
                switch step {
                case .beforeTheReservation:
                    // Nothing shows that a call waits in a cell before running; its fault holds it for 5 s.
                    try await Task.sleep(for: .milliseconds(500))
                    #expect(try await count("SELECT count(*) FROM merchant_keys WHERE merchant_id = '\(merchant)' AND out_trade_no IN (\(list))", on: primaries[0]) == 0)
                case .betweenReservationAndOrder:
                    try await waitUntil(timeout: .seconds(10)) { try await count(reservedForCell2, on: primaries[0]) == keys.count }
                    try await Task.sleep(for: .milliseconds(200))
                    #expect(try await count(ordersMade, on: primaries[1]) == 0)
                case .betweenOrderAndAnswer:
                    // Committed, holding their keys, while their answers wait.
                    try await waitUntil(timeout: .seconds(10)) { try await count(ordersMade, on: primaries[0]) == keys.count }
                }
                let killed = try [cluster.kill9("proxy-1"), cluster.kill9("cell-\(held.cell)-service-1"), cluster.kill9("cell-\(held.cell)-service-2")]
                for task in inFlight { _ = await task.value }
                for process in killed.dropFirst() { try await cluster.restart(process) }
                // Restarted services have no fault; the proxy's outlier detection may still pass the cell over a moment.
                #expect(try await proxies[1].send(.DELETE, "/admin/cells/\(held.cell)/fault", admin: true).status == 200)
                try await cluster.restart(killed[0])
                if step == .betweenReservationAndOrder {
                    let undone = try await control.send(.PATCH, "/admin/cells/1", #"{"weight":100,"reason":"merchant-key drill: undo the drain"}"#, admin: true)
                    let version = try #require(Int(undone["version"] ?? ""), "\(undone.text)")
                    for proxy in proxies { try await waitForRouting(version, on: proxy) }
                }

                // The client retries each key, through either proxy, until it has an answer.
                var answered: [String: String] = [:]
                for (number, key) in keys.enumerated() {
                    let giveUp = ContinuousClock.now.advanced(by: .seconds(30))
                    var last = ""
                    while answered[key] == nil, ContinuousClock.now < giveUp {
                        if let retry = try? await proxies[number % 2].create(merchant, key) {
                            if [200, 201].contains(retry.status), let id = retry["order_id"] { answered[key] = id } else { last = "\(retry.status) \(retry.code ?? "")" }
                        }
                        if answered[key] == nil { try await Task.sleep(for: .milliseconds(200)) }
                    }
                    #expect(answered[key] != nil, "\(step): the retry of \(key) got an order (last answer \(last))")
                }
                // Exactly one order per key in the cells, the one the retry answered; it pays once.
                var stored: [String: [String]] = [:]
                for primary in try await cellPrimaries() {
                    for row in try await rows("SELECT out_trade_no, order_id FROM orders WHERE merchant_id = '\(merchant)' AND out_trade_no IN (\(list))", on: primary)
                    where row.count == 2 {
                        stored[row[0], default: []].append(row[1])
                    }
                }
                for key in keys {
                    #expect(stored[key] == answered[key].map { [$0] }, "\(step): \(key) has one order, the one answered: \(stored[key] ?? []) vs \(answered[key] ?? "none")")
                    if let id = answered[key] {
                        let paid = try await proxies[1].pay(id, "pay-\(key)")
                        #expect(paid.status == 200, "\(step): paying \(key)'s order: \(paid.status) \(paid.code ?? "")")
                    }
                }
                print("merchant keys, SIGKILL of proxy 1 and cell \(held.cell)'s services \(step.rawValue): \(keys.count) keys, one order each after the retry")
            }
        }

        // MARK: - 4. SIGKILL of a cell service and a proxy under load

        /// What the load's clients saw, per key and in all.
        final class KillLoad: Sendable {
            /// Every order id a create answered (201 or 200) for a key, first answer and replays.
            let seen = Mutex<[String: Set<String>]>([:])
            /// The id each key's pay went to, and what the pay got: "paid", "duplicate" or the last failure.
            let pays = Mutex<[String: (id: String, outcome: String)]>([:])
            let keys = Mutex<[String]>([])
            let gaveUp = Mutex<[String]>([])
            let createRetries = Atomic(0)
            let payRetries = Atomic(0)
            let transportErrors = Atomic(0)
            let serviceUnavailable = Atomic(0)
            let unexpected = Mutex<[String]>([])
            let replayMismatches = Mutex<[String]>([])

            func saw(_ key: String, _ id: String) { _ = seen.withLock { $0[key, default: []].insert(id) } }
        }

        @Test func afterASigkillOfACellServiceAndAProxyEveryKeyHasAtMostOnePaidOrder() async throws {
            let merchant = "mk-kill"
            let proxies = cluster.proxies.map { APIClient(base: $0.base, adminToken: $0.adminToken, timeout: 5, http: $0.http) }
            try #require(proxies.count == 2)
            let service = try #require(try cluster.currentComponent("cell-1-service-1")?.pid)
            let proxy = try #require(try cluster.currentComponent("proxy-1")?.pid)
            try #require(kill(service, 0) == 0 && kill(proxy, 0) == 0, "cell-1-service-1 and proxy-1 run")
            let load = KillLoad()
            let stopFlag = StopFlag()

            let workers = Task {
                await withTaskGroup(of: Void.self) { group in
                    for worker in 0..<8 {
                        group.addTask { await Self.killLoad(worker: worker, merchant: merchant, proxies: proxies, load: load, stop: stopFlag) }
                    }
                }
            }
            try await Task.sleep(for: .seconds(1.5))
            let atServiceKill = load.keys.withLock { $0.count }
            kill(service, SIGKILL)
            try await Task.sleep(for: .seconds(1))
            let atProxyKill = load.keys.withLock { $0.count }
            kill(proxy, SIGKILL)
            try await ClusterTests.keepLoading(for: .seconds(1.5), until: { load.keys.withLock { $0.count } >= atProxyKill + 40 })
            stopFlag.set()
            await workers.value
            // Neither restarts by itself (the local cluster has no supervisor): the other instance and proxy carry on.
            #expect(kill(service, 0) != 0 && kill(proxy, 0) != 0)
            let keys = load.keys.withLock { $0 }
            #expect(load.transportErrors.load(ordering: .relaxed) > 0, "the clients of proxy 1 lost it and went on through proxy 2")
            #expect(keys.count > atProxyKill, "keys kept being created after the kills (\(atServiceKill) before the service's, \(atProxyKill) before the proxy's)")
            #expect(load.gaveUp.withLock { $0 }.isEmpty, "a client retrying gets every key's order: \(load.gaveUp.withLock { $0 }.prefix(5))")
            #expect(load.unexpected.withLock { $0 }.isEmpty, "no answer but 201/200, 503 (create, pay) and 409 duplicate_order (pay): \(load.unexpected.withLock { $0 }.prefix(5))")

            // The reconciler: every order of the merchant verified or closed, no moved key left unsettled.
            let survivor = proxies[1]
            let reconcileStarted = ContinuousClock.now
            var unsettled = (orders: -1, moved: -1)
            while ContinuousClock.now - reconcileStarted < .seconds(40) {
                unsettled = (0, 0)
                for primary in try await cellPrimaries() {
                    unsettled.orders += try await count(
                        "SELECT count(*) FROM orders WHERE merchant_id = '\(merchant)' AND key_status IN ('RESERVED', 'UNINDEXED')", on: primary
                    )
                    unsettled.moved += try await count("SELECT count(*) FROM merchant_keys WHERE merchant_id = '\(merchant)' AND abandoned <> ''", on: primary)
                }
                if unsettled == (0, 0) { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            let reconcileWait = ContinuousClock.now - reconcileStarted
            #expect(unsettled == (0, 0), "the reconciler verified every order and settled every moved key: \(unsettled) left")

            // Every order of the merchant in the cells, by key.
            var stored: [String: [(id: String, status: String, closeReason: String, keyStatus: String)]] = [:]
            for primary in try await cellPrimaries() {
                for row in try await rows(
                    "SELECT out_trade_no, order_id, status, coalesce(close_reason, ''), key_status FROM orders WHERE merchant_id = '\(merchant)'", on: primary
                ) where row.count == 5 {
                    stored[row[0], default: []].append((row[1], row[2], row[3], row[4]))
                }
            }
            let inTheCells = stored
            let seen = load.seen.withLock { $0 }
            let pays = load.pays.withLock { $0 }
            var problems: [String] = []
            var rivals = 0
            let checks = try await concurrently(keys.count, width: 8) { index -> [String] in
                let key = keys[index]
                var problems: [String] = []
                let found = try await survivor.send(.GET, "/v1/orders?merchant_id=\(merchant)&out_trade_no=\(key)")
                guard found.status == 200, let holder = found["order_id"] else {
                    return ["\(key): the lookup answered \(found.status) \(found.code ?? "")"]
                }
                var paid: [String] = []
                for id in (seen[key] ?? []).union([holder]).sorted() {
                    let order = try await survivor.send(.GET, "/v1/orders/\(id)")
                    guard order.status == 200 else {
                        problems.append("\(key): order \(id) answers \(order.status) \(order.code ?? "")")
                        continue
                    }
                    if order["status"] == "PAID" { paid.append(id) }
                    if id == holder {
                        if order["close_reason"] == "DUPLICATE" { problems.append("\(key): the lookup answers \(id), closed as a duplicate") }
                    } else {
                        let closedAsDuplicate = order["status"] == "CLOSED" && order["close_reason"] == "DUPLICATE"
                        let neverPayable = pays[key]?.id == id && pays[key]?.outcome == "duplicate"
                        if !(closedAsDuplicate || neverPayable) {
                            problems.append("\(key): rival \(id) of \(holder) is \(order["status"] ?? "?") \(order["close_reason"] ?? "")")
                        }
                    }
                }
                if paid.count > 1 { problems.append("\(key): \(paid.count) orders paid: \(paid)") }
                if let one = paid.first, one != holder { problems.append("\(key): \(one) is paid but the lookup answers \(holder)") }
                if let pay = pays[key], pay.outcome == "paid", pay.id != holder { problems.append("\(key): the pay of \(pay.id) succeeded, the lookup answers \(holder)") }
                // Whatever the cells hold for the key, seen by a client or not: one order not closed as a duplicate, the holder.
                let inCells = inTheCells[key] ?? []
                if inCells.filter({ $0.status == "PAID" }).count > 1 { problems.append("\(key): the cells hold \(inCells.count) orders, several PAID") }
                for order in inCells where order.id != holder && !(order.status == "CLOSED" && order.closeReason == "DUPLICATE") {
                    problems.append("\(key): the cells hold \(order.id) beside holder \(holder), \(order.status) \(order.closeReason) \(order.keyStatus)")
                }
                if !inCells.contains(where: { $0.id == holder }) { problems.append("\(key): holder \(holder) is not in the cells' primaries") }
                return problems
            }
            problems = checks.flatMap { $0 }
            for key in keys { rivals += max(0, Set((seen[key] ?? [])).union((stored[key] ?? []).map(\.id)).count - 1) }
            #expect(problems.isEmpty, "\(problems.count) problems: \(problems.prefix(8))")
            #expect(Set(stored.keys).isSubset(of: Set(keys)), "the cells hold no order of a key no client created")
            let paidCount = pays.values.filter { $0.outcome == "paid" }.count
            let duplicatePays = pays.values.filter { $0.outcome == "duplicate" }.count
            print(
                "merchant keys, SIGKILL of cell-1-service-1 (after \(atServiceKill) keys) and proxy-1 (after \(atProxyKill)): "
                    + "\(keys.count) keys, \(rivals) rival orders, \(paidCount) paid, \(duplicatePays) pays 409 duplicate_order; "
                    + "retries: \(load.createRetries.load(ordering: .relaxed)) creates, \(load.payRetries.load(ordering: .relaxed)) pays "
                    + "(\(load.transportErrors.load(ordering: .relaxed)) transport errors, \(load.serviceUnavailable.load(ordering: .relaxed)) 503s); "
                    + "\(load.replayMismatches.withLock { $0.count }) replays answering another order; reconciled \(Self.seconds(reconcileWait)) s after the load"
            )
        }

        /// One client of the SIGKILL test: creates keys one after another,
        /// repeating a key's create until it gets its order (on the other proxy
        /// after a transport error), pays it, and now and then sends the create
        /// once more through the other proxy as a client unsure of the answer would.
        static func killLoad(worker: Int, merchant: String, proxies: [APIClient], load: KillLoad, stop: StopFlag) async {
            var preferred = worker % proxies.count
            var round = 0
            while !stop.isSet {
                round += 1
                let key = "kill-\(worker)-\(round)"
                load.keys.withLock { $0.append(key) }
                var order: String?
                var attempts = 0
                while order == nil, attempts < 60 {
                    attempts += 1
                    if attempts > 1 { load.createRetries.add(1, ordering: .relaxed) }
                    do {
                        let created = try await proxies[preferred].create(merchant, key)
                        switch created.status {
                        case 200, 201:
                            order = created["order_id"]
                            if let order { load.saw(key, order) }
                        case 503:
                            load.serviceUnavailable.add(1, ordering: .relaxed)
                            try? await Task.sleep(for: .milliseconds(100))
                        default:
                            load.unexpected.withLock { $0.append("create \(key): \(created.status) \(created.text.prefix(200))") }
                            try? await Task.sleep(for: .milliseconds(100))
                        }
                    } catch {
                        load.transportErrors.add(1, ordering: .relaxed)
                        preferred = (preferred + 1) % proxies.count
                    }
                }
                guard let order else {
                    load.gaveUp.withLock { $0.append(key) }
                    continue
                }
                var outcome = "not tried"
                for attempt in 0..<60 {
                    if attempt > 0 { load.payRetries.add(1, ordering: .relaxed) }
                    do {
                        let paid = try await proxies[preferred].pay(order, "pay-\(key)")
                        if paid.status == 200 {
                            outcome = "paid"
                            break
                        }
                        if paid.status == 409, paid.code == "duplicate_order" {
                            outcome = "duplicate"
                            break
                        }
                        outcome = "\(paid.status) \(paid.code ?? "")"
                        guard paid.status == 503 else {
                            load.unexpected.withLock { $0.append("pay \(key) \(order): \(paid.status) \(paid.text.prefix(200))") }
                            break
                        }
                        load.serviceUnavailable.add(1, ordering: .relaxed)
                        try? await Task.sleep(for: .milliseconds(100))
                    } catch {
                        outcome = "no answer: \(error)"
                        load.transportErrors.add(1, ordering: .relaxed)
                        preferred = (preferred + 1) % proxies.count
                    }
                }
                load.pays.withLock { $0[key] = (order, outcome) }
                // The repeat of a key that needed retries (and of every 8th): through the other proxy, it meets the same order.
                if attempts > 1 || round % 8 == 0 {
                    let other = (preferred + 1) % proxies.count
                    for client in [other, preferred] {
                        guard let again = try? await proxies[client].create(merchant, key) else { continue }
                        if [200, 201].contains(again.status), let id = again["order_id"] {
                            load.saw(key, id)
                            if id != order { load.replayMismatches.withLock { $0.append("\(key): \(order) then \(id)") } }
                        }
                        break
                    }
                }
            }
        }

        // MARK: - 5. Lookup after a failover

        @Test func theLookupByOutTradeNoFindsEveryOrderAfterAFailover() async throws {
            // Proxy 1 was killed by the previous test: this one drives proxy 2.
            let proxy = cluster.proxies[1]
            var orders: [(key: String, id: String, cell: Int)] = []
            for index in 0..<200 where orders.filter({ $0.cell == 1 }).count < 12 || orders.filter({ $0.cell == 2 }).count < 12 {
                let created = try await proxy.create("mk-failover", "fo-\(index)")
                try #require(created.status == 201, "\(created.text)")
                orders.append(("fo-\(index)", try #require(created["order_id"]), try #require(created.json["cell_id"] as? Int)))
            }
            #expect(Set(orders.map(\.cell)) == [1, 2], "orders in both cells")
            let placed = orders

            // An operator fails cell 2 over to its synchronous standby (Patroni's forced failover; a lost
            // primary fails over by itself, PatroniFailoverTests).
            let started = ContinuousClock.now
            let output = try await LocalClusterFixture.ordercell([
                "admin", "cell", "failover", "2", "--control", cluster.state.controlURL, "--admin-token", cluster.state.adminToken,
            ])
            #expect(output.contains("cell 2 failed over"), "\(output)")

            // Every order, both cells' and whichever cell holds its key's index slot, is found by its number.
            var wrong: [String] = []
            for _ in 0..<100 {
                let lookups = try await concurrently(orders.count, width: 8) { index in
                    try await proxy.send(.GET, "/v1/orders?merchant_id=mk-failover&out_trade_no=\(placed[index].key)&consistency=strong")
                }
                wrong = zip(orders, lookups).compactMap { order, found in
                    found.status == 200 && found["order_id"] == order.id ? nil : "\(order.key) (cell \(order.cell)): \(found.status) \(found["order_id"] ?? found.code ?? "")"
                }
                if wrong.isEmpty { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            let elapsed = ContinuousClock.now - started
            #expect(wrong.isEmpty, "after the failover the lookup by out_trade_no answers every order: \(wrong.prefix(5))")
            // A repeat still meets its first order, in the failed-over cell too.
            for order in orders.filter({ $0.cell == 2 }).prefix(4) {
                let repeated = try await proxy.create("mk-failover", order.key)
                #expect(repeated.status == 200 && repeated["order_id"] == order.id, "\(repeated.text)")
            }
            print(
                "merchant keys, failover of cell 2: \(orders.count) orders (\(orders.filter { $0.cell == 2 }.count) in cell 2) found by out_trade_no "
                    + "\(Self.seconds(elapsed)) s after the failover began"
            )
        }

        // MARK: - 6. An operator moves index slots, online

        @Test func indexSlotsMoveBetweenCellsUnderLoadWithTheCommandLine() async throws {
            let proxy = cluster.proxies[1]
            let merchant = "mk-move"
            // Keys whose slot is in 0...31: held by cell 1 (slots are dealt 0-127 to cell 1, 128-255 to cell 2).
            var moving: [String] = []
            var index = 0
            while moving.count < 60 {
                if MerchantKey(merchantID: merchant, outTradeNo: "mv-\(index)").indexSlot < 32 { moving.append("mv-\(index)") }
                index += 1
            }
            let keys = moving
            let created = try await concurrently(keys.count, width: 8) { try await proxy.create(merchant, keys[$0]) }
            try #require(created.allSatisfy { $0.status == 201 }, "\(created.first { $0.status != 201 }?.text ?? "")")
            let ids = created.map { $0["order_id"]! }

            // Repeats of those keys and creates of new ones while the slots move.
            let stop = StopFlag()
            let answered = Tally()
            async let load: [(key: String, status: Int, id: String?, expected: String?)] = {
                var answers: [(key: String, status: Int, id: String?, expected: String?)] = []
                var round = 0
                while !stop.isSet {
                    let index = round % keys.count
                    let repeated = try await proxy.create(merchant, keys[index])
                    answers.append((keys[index], repeated.status, repeated["order_id"], ids[index]))
                    let fresh = try await proxy.create(merchant, "new-\(round)")
                    answers.append(("new-\(round)", fresh.status, fresh["order_id"], nil))
                    round += 1
                    answered.add()
                }
                return answers
            }()
            try await waitUntil { answered.value >= 10 }
            let started = ContinuousClock.now
            let output = try await LocalClusterFixture.ordercell([
                "admin", "index-slots", "move", "0...31", "--to", "2", "--reason", "merchant-key drill: move slots",
                "--control", cluster.state.controlURL, "--admin-token", cluster.state.adminToken,
            ])
            let took = ContinuousClock.now - started
            // Creates after the move as well: the proxy routes by the new release.
            let afterMove = answered.value
            try await waitUntil { answered.value >= afterMove + 10 }
            stop.set()
            let answers = try await load
            #expect(output.contains("moved from cells 1 to cell 2"), "\(output)")
            #expect(answers.allSatisfy { [200, 201].contains($0.status) }, "\(answers.first { ![200, 201].contains($0.status) }.map { "\($0)" } ?? "")")
            #expect(answers.filter { $0.expected != nil }.allSatisfy { $0.id == $0.expected }, "repeats meet their first order: \(answers.filter { $0.expected != nil && $0.id != $0.expected }.prefix(5))")

            // The moved entries are in cell 2's storage and no longer in cell 1's, where the slots stay frozen.
            let primaries = try await cellPrimaries()
            let list = keys.map { "('\(merchant)','\($0)')" }.joined(separator: ",")
            let inCell = "SELECT count(*) FROM merchant_keys WHERE (merchant_id, out_trade_no) IN (\(list))"
            #expect(try await count(inCell, on: primaries[1]) == keys.count)
            #expect(try await count(inCell, on: primaries[0]) == 0)
            #expect(try await count("SELECT count(*) FROM index_slot_fences", on: primaries[0]) == 32)
            // Lookups and repeats go to the slots' new cell.
            for (key, id) in zip(keys, ids) {
                let found = try await proxy.send(.GET, "/v1/orders?merchant_id=\(merchant)&out_trade_no=\(key)")
                #expect(found.status == 200 && found["order_id"] == id, "\(key): \(found.text)")
            }
            print(
                "merchant keys, slot move 0...31 to cell 2 under load: \(Self.seconds(took)) s for the command; "
                    + "\(answers.count) creates meanwhile, \(answers.filter { $0.status == 201 }.count) new; \(output.split(separator: "\n").first ?? "")"
            )
        }

        // MARK: - Helpers

        /// Waits until `proxy` routes by release `version` (or a newer one).
        func waitForRouting(_ version: Int, on proxy: APIClient) async throws {
            let giveUp = ContinuousClock.now.advanced(by: .seconds(15))
            while ContinuousClock.now < giveUp {
                if let installed = Int(try await proxy.send(.GET, "/readyz")["routing_version"] ?? ""), installed >= version { return }
                try await Task.sleep(for: .milliseconds(20))
            }
            Issue.record("\(proxy.base) did not install routing release \(version) within 15 s")
        }

        /// Each cell's current primary, as the control plane's routing table has it (a failover moves it).
        func cellPrimaries() async throws -> [(port: Int, database: String)] {
            let control = cluster.control
            let cells = try await control.send(.GET, "/admin/cells", admin: true).json["cells"] as? [[String: Any]] ?? []
            let primaries: [(port: Int, database: String)] = cells.compactMap { cell in
                // `postgres://user@host:port/database`
                guard let primary = (cell["storage"] as? [String: Any])?["primary"] as? String, let url = URLComponents(string: primary),
                    let port = url.port, url.path.count > 1
                else { return nil }
                return (port, String(url.path.dropFirst()))
            }
            try #require(primaries.count == cluster.state.cells, "the control plane names every cell's primary: \(cells)")
            return primaries
        }

        /// The rows `sql` selects on a cell's primary, columns split.
        func rows(_ sql: String, on primary: (port: Int, database: String)) async throws -> [[String]] {
            let output = try await Command.run([
                Command.postgresTool("psql"), "-h", "127.0.0.1", "-p", "\(primary.port)", "-U", "ordercell", "-d", primary.database, "-tA", "-F", "|", "-c", sql,
            ])
            return output.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
        }

        func count(_ sql: String, on primary: (port: Int, database: String)) async throws -> Int {
            let output = try await rows(sql, on: primary)
            return try #require(output.first?.first.flatMap { Int($0) }, "\(sql): \(output)")
        }

        static func secondsValue(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }

        static func seconds(_ duration: Duration) -> String { String(format: "%.1f", secondsValue(duration)) }
    }
}
