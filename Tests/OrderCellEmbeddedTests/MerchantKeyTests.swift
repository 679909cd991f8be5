import CellRouting
import Foundation
import OrderModel
import OrderProxy
import Testing

/// `(merchant_id, out_trade_no)` unique across all cells (docs/merchant-keys.md), end to end over HTTP.
@Suite("Merchant keys across cells")
struct MerchantKeyTests {
    /// The routing table's cell for a key's index slot.
    static func slotCell(_ system: TestSystem, _ merchant: String, _ outTradeNo: String) -> Int {
        Int(system.system.proxy.routingTable.indexCell(for: MerchantKey(merchantID: merchant, outTradeNo: outTradeNo))!.rawValue)
    }

    /// Keys of `merchant` whose slot is (or is not) in `cell`.
    static func keys(_ system: TestSystem, _ merchant: String, prefix: String, count: Int, slotIn cell: Int, _ inCell: Bool = true) -> [String] {
        var found: [String] = []
        var index = 0
        while found.count < count {
            let key = "\(prefix)-\(index)"
            if (slotCell(system, merchant, key) == cell) == inCell { found.append(key) }
            index += 1
        }
        return found
    }

    @Test("a repeat meets the first order wherever the routing now sends new orders: drained, blacklisted, sealed; 503 while failing, or an unpayable order under `available` when the failing cell holds the key's slot too")
    func repeatsMeetTheFirstOrder() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4)) { system in
            let api = system.client
            for (number, (change, undo)) in [
                ((#"PATCH"#, #"{"weight":0,"reason":"drain"}"#), #"{"weight":100}"#),
                (("PUT-blacklist", #"{"reason":"disk"}"#), ""),
                (("PATCH", #"{"state":"SEALED","reason":"full"}"#), #"{"state":"ACTIVE"}"#),
            ].enumerated() {
                let first = try await api.create("m1", "demo-\(number)")
                #expect(first.status == 201)
                let cell = try #require(first.json["cell_id"] as? Int)
                if change.0 == "PUT-blacklist" {
                    #expect(try await api.send(.PUT, "/control/admin/cells/\(cell)/blacklist", change.1, admin: true).status == 200)
                } else {
                    #expect(try await api.send(.PATCH, "/control/admin/cells/\(cell)", change.1, admin: true).status == 200)
                }
                // The same request again, and again through new routing: the first order, never a second.
                for _ in 0..<3 {
                    let repeated = try await api.create("m1", "demo-\(number)")
                    #expect(repeated.status == 200, "\(change.1): \(repeated.text)")
                    #expect(repeated["order_id"] == first["order_id"])
                }
                let differs = try await api.create("m1", "demo-\(number)", amount: 999)
                #expect(differs.status == 409 && differs.code == "out_trade_no_conflict")
                if change.0 == "PUT-blacklist" {
                    #expect(try await api.send(.DELETE, "/control/admin/cells/\(cell)/blacklist", admin: true).status == 200)
                } else {
                    #expect(try await api.send(.PATCH, "/control/admin/cells/\(cell)", undo, admin: true).status == 200)
                }
            }
            // A failing cell: its key's repeat cannot be answered, and is not made elsewhere either.
            // A key whose order and index slot are in different cells (made while its slot's cell took no new orders):
            // the index answers that the key is bound to the failing cell.
            let key = "demo-failing"
            let slotCell = Self.slotCell(system, "m1", key)
            #expect(try await api.send(.PUT, "/control/admin/cells/\(slotCell)/blacklist", #"{"reason":"elsewhere"}"#, admin: true).status == 200)
            let first = try await api.create("m1", key)
            let cell = try #require(first.json["cell_id"] as? Int)
            #expect(cell != slotCell && first["key_status"] == "RESERVED", "\(first.text)")
            #expect(try await api.send(.DELETE, "/control/admin/cells/\(slotCell)/blacklist", admin: true).status == 200)
            #expect(try await api.send(.PUT, "/admin/cells/\(cell)/fault", #"{"mode":"fail"}"#, admin: true).status == 200)
            let during = try await api.create("m1", key)
            #expect(during.status == 503 && during.code == "cell_unavailable", "\(during.text)")
            #expect(during.retryAfter != nil)
            #expect(try await api.send(.DELETE, "/admin/cells/\(cell)/fault", admin: true).status == 200)
            let after = try await api.create("m1", key)
            #expect(after.status == 200 && after["order_id"] == first["order_id"])

            // A key whose order is in its own slot's cell (the usual case: order retry tries that cell first), that cell
            // failing: nothing can tell a repeat from a new key. `strict` refuses; `available` takes a new order that
            // cannot be paid, and that the reconciler closes once the cell is back (docs/merchant-keys.md, "The guarantee").
            var own: (key: String, first: HTTPResult)?
            for candidate in Self.keys(system, "m1", prefix: "own", count: 40, slotIn: 1) where own == nil {
                let created = try await api.create("m1", candidate)
                if created.json["cell_id"] as? Int == 1 { own = (candidate, created) }
            }
            let (ownKey, ownFirst) = try #require(own, "a key whose order is in its slot's cell")
            #expect(try await api.send(.PUT, "/admin/cells/1/fault", #"{"mode":"fail"}"#, admin: true).status == 200)
            let strict = #"{"policy":{"index_slot_policies":{"normal":"strict"}},"reason":"strict keys"}"#
            #expect(try await api.send(.PUT, "/control/admin/config", strict, admin: true).status == 200)
            let refused = try await api.create("m1", ownKey)
            #expect(refused.status == 503 && refused.code == "index_unavailable" && refused.retryAfter != nil, "\(refused.text)")
            #expect(try await api.send(.PUT, "/control/admin/config", #"{"policy":{},"reason":"available"}"#, admin: true).status == 200)
            let unverified = try await api.create("m1", ownKey)
            let unverifiedID = try #require(unverified["order_id"])
            #expect(unverified.status == 201 && unverified["key_status"] == "UNINDEXED" && unverified.json["cell_id"] as? Int != 1, "\(unverified.text)")
            let early = try await api.pay(unverifiedID, "p-unverified")
            #expect(early.status == 503 && early.code == "index_unavailable", "\(early.text)")
            #expect(try await api.send(.DELETE, "/admin/cells/1/fault", admin: true).status == 200)
            system.clock.advance(seconds: 10)
            let round = await system.system.keyReconciler.runRound(limit: 1000)
            #expect(round.failures.isEmpty && round.closedDuplicates == 1, "\(round)")
            let repeated = try await api.create("m1", ownKey)
            #expect(repeated.status == 200 && repeated["order_id"] == ownFirst["order_id"], "\(repeated.text)")
            let late = try await api.pay(unverifiedID, "p-unverified")
            #expect(late.status == 409 && late.code == "duplicate_order", "\(late.text)")
            #expect(try await api.pay(ownFirst["order_id"]!, "p-own").status == 200)
        }
    }

    @Test("8 clients racing 2 400 creates of 150 keys, some with another amount: exactly 150 orders, every repeat 200 or 409")
    func racingCreatesMakeOneOrderPerKey() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4)) { system in
            let api = system.client
            let answers = try await concurrently(2_400, width: 8) { index in
                let key = index % 150
                // Every 7th send of a key asks for another amount.
                let amount: Int64 = index % 7 == 3 ? 2000 : 1000
                let answer = try await api.create("m-race", "race-\(key)", amount: amount)
                return (key, amount, answer.status, answer["order_id"], answer.code)
            }
            var orders: [Int: Set<String>] = [:]
            for (key, amount, status, id, code) in answers {
                switch status {
                case 201, 200: orders[key, default: []].insert(id ?? "?")
                case 409: #expect(code == "out_trade_no_conflict")
                default: Issue.record("key \(key) amount \(amount): \(status) \(code ?? "")")
                }
            }
            #expect(orders.count == 150 && orders.values.allSatisfy { $0.count == 1 }, "one order per key")
            var stored = 0
            for service in system.system.cells.values { stored += try await service.store.orderCount() }
            #expect(stored == 150, "the cells hold exactly one order per key")
            print("racing creates: \(answers.filter { $0.2 == 201 }.count) created, \(answers.filter { $0.2 == 200 }.count) replayed, \(answers.filter { $0.2 == 409 }.count) conflicts")
        }
    }

    @Test("lookup by out_trade_no finds orders in every cell, a sealed one included; 404 for none, 400 for bad input")
    func lookupByOutTradeNo() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4)) { system in
            let api = system.client
            let created = try await concurrently(40, width: 8) { try await api.create("m-look", "look-\($0)") }
            #expect(Set(created.compactMap { $0.json["cell_id"] as? Int }) == [1, 2, 3, 4])
            #expect(try await api.send(.PATCH, "/control/admin/cells/2", #"{"state":"SEALED"}"#, admin: true).status == 200)
            for (index, order) in created.enumerated() {
                for consistency in ["strong", "eventual"] {
                    let found = try await api.send(.GET, "/v1/orders?merchant_id=m-look&out_trade_no=look-\(index)&consistency=\(consistency)")
                    #expect(found.status == 200 && found["order_id"] == order["order_id"], "\(found.text)")
                }
            }
            let missing = try await api.send(.GET, "/v1/orders?merchant_id=m-look&out_trade_no=never")
            #expect(missing.status == 404 && missing.code == "order_not_found")
            let otherMerchant = try await api.send(.GET, "/v1/orders?merchant_id=m-other&out_trade_no=look-1")
            #expect(otherMerchant.status == 404)
            for bad in ["/v1/orders?merchant_id=m-look", "/v1/orders?out_trade_no=x", "/v1/orders?merchant_id=a%20b&out_trade_no=x",
                        "/v1/orders?merchant_id=m&out_trade_no=x&consistency=maybe", "/v1/orders?merchant_id=ordercell-probe&out_trade_no=x"] {
                let refused = try await api.send(.GET, bad)
                #expect(refused.status == 400 && refused.code == "invalid_request", "\(bad): \(refused.text)")
            }
        }
    }

    @Test("a rival order in another cell can never be paid: 409 duplicate_order, and the reconciler closes it as DUPLICATE")
    func rivalsAreNeverPaid() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4)) { system in
            let api = system.client
            let first = try await api.create("m1", "rival-1")
            let cell = try #require(first.json["cell_id"] as? Int)
            let holder = try #require(first["order_id"])
            // Made in the cell of its key's slot, it holds its key from its create on.
            #expect(cell == Self.slotCell(system, "m1", "rival-1") && first["key_status"] == "VERIFIED", "\(first.text)")
            // As if an attempt the proxy gave up on had committed in another cell after all.
            let other = CellID(unchecked: UInt16(cell % 4 + 1))
            let request = try CreateOrderRequest(merchantID: "m1", outTradeNo: "rival-1", amount: 1000, currency: "CNY", description: nil, expireSeconds: nil)
            let rival = try await system.system.cells[other]!.create(request).order
            #expect(rival.keyStatus == .reserved)

            let refused = try await api.pay(rival.id.description, "pay-rival")
            #expect(refused.status == 409 && refused.code == "duplicate_order", "\(refused.text)")
            system.clock.advance(seconds: 10)
            // The reconciler finds the key held by another order, and closes the rival.
            let round = await system.system.keyReconciler.runRound()
            #expect(round.closedDuplicates == 1 && round.verified == 0 && round.failures.isEmpty, "\(round)")
            let closed = try await api.send(.GET, "/v1/orders/\(rival.id)")
            #expect(closed["status"] == "CLOSED" && closed["close_reason"] == "DUPLICATE" && closed["key_status"] == "DUPLICATE")
            let events = try await api.send(.GET, "/v1/orders/\(rival.id)/events")
            #expect(events.text.contains("ORDER_CLOSED") && events.text.contains(holder), "the audit names the holder: \(events.text)")
            let paid = try await api.pay(holder, "pay-holder")
            #expect(paid.status == 200 && paid["key_status"] == "VERIFIED")
            #expect(try await api.pay(rival.id.description, "pay-rival").status == 409)
        }
    }

    @Test("a bound create that times out moves its reservation: one that committed is found and answered, one that did not goes on; never a rival")
    func boundCreatesThatTimeOut() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4), proxy: ProxyConfiguration(cellCallTimeout: .seconds(2))) { system in
            let api = system.client
            // Keys whose slot is in cell 2: order retry tries cell 2 first for them, with bind and create in one call.
            let keys = Self.keys(system, "m1", prefix: "late", count: 2, slotIn: 2)
            func orders(of key: String) async throws -> [Order] {
                var found: [Order] = []
                for (_, cell) in system.system.cells {
                    if let order = try await cell.order(MerchantKey(merchantID: "m1", outTradeNo: key), consistency: .strong) { found.append(order) }
                }
                return found
            }
            // Each fault holds back one call only (`calls`: 1): the create's. The move that follows its deadline runs at once.

            // Committed, its answer held back past the proxy's deadline: the move finds the key held by that order.
            #expect(try await api.send(.PUT, "/admin/cells/2/fault", #"{"mode":"late_answer","latency_ms":60000,"calls":1}"#, admin: true).status == 200)
            let committed = try await api.create("m1", keys[0])
            #expect(committed.status == 200 && committed.json["cell_id"] as? Int == 2 && committed["key_status"] == "VERIFIED", "\(committed.text)")
            let committedID = try #require(committed["order_id"])
            #expect(try await orders(of: keys[0]).map(\.id.description) == [committedID])
            #expect(try await api.pay(committedID, "p-late-0").status == 200)
            #expect(system.system.cells.first { $0.key.rawValue == 2 }?.value.currentFault == CellFault.none, "the fault ended after its one call")

            // Never run (held before it started past the deadline, and given up): the move reserves the key for the next cell.
            #expect(try await api.send(.PUT, "/admin/cells/2/fault", #"{"mode":"latency","latency_ms":60000,"calls":1}"#, admin: true).status == 200)
            let moved = try await api.create("m1", keys[1])
            #expect(moved.status == 201 && moved.json["cell_id"] as? Int != 2 && moved["key_status"] == "RESERVED", "\(moved.text)")
            let movedID = try #require(moved["order_id"])
            #expect(try await orders(of: keys[1]).map(\.id.description) == [movedID])
            let found = try await api.send(.GET, "/v1/orders?merchant_id=m1&out_trade_no=\(keys[1])")
            #expect(found["order_id"] == movedID)
            #expect(try await api.pay(movedID, "p-late-1").status == 200)
        }
    }

    @Test("a pay whose key is reserved for another cell's unfinished create answers 503 index_unavailable; once the reconciler settles the key it pays")
    func payOfAKeyReservedForAnotherCell() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4)) { system in
            let api = system.client
            let key = Self.keys(system, "m1", prefix: "reserved", count: 1, slotIn: 3)[0]
            // The key's slot down: `available` makes the order unindexed.
            #expect(try await api.send(.PUT, "/admin/cells/3/fault", #"{"mode":"fail"}"#, admin: true).status == 200)
            let order = try await api.create("m1", key)
            let orderCell = try #require(order.json["cell_id"] as? Int)
            let id = try #require(order["order_id"])
            #expect(order.status == 201 && order["key_status"] == "UNINDEXED", "\(order.text)")
            #expect(try await api.send(.DELETE, "/admin/cells/3/fault", admin: true).status == 200)
            // Meanwhile another create of the key reserved it for a cell where it has not made its order yet.
            let slot = try #require(system.system.cells.first { $0.key.rawValue == 3 }?.value)
            let other = try #require(system.system.cells.keys.first { ![3, orderCell].contains(Int($0.rawValue)) })
            let reserved = try await slot.bindMerchantKey(MerchantKey(merchantID: "m1", outTradeNo: key), candidate: other, attempt: 7)
            #expect(reserved.owner == other)
            // Not final: that create may still move the key here, or make its order there. Try again later, not "duplicate".
            let pay = try await api.pay(id, "p-reserved")
            #expect(pay.status == 503 && pay.code == "index_unavailable" && pay.retryAfter != nil, "\(pay.text)")
            // The reservation's create made nothing within the grace: the reconciler gives the key to this order.
            system.clock.advance(seconds: 10)
            let round = await system.system.keyReconciler.runRound(limit: 1000)
            #expect(round.failures.isEmpty && round.closedDuplicates == 0, "\(round)")
            let paid = try await api.pay(id, "p-reserved")
            #expect(paid.status == 200 && paid["key_status"] == "VERIFIED", "\(paid.text)")
        }
    }

    @Test("order retry moves its own reservation off a failing cell; the reconciler settles the move")
    func orderRetryMovesItsReservation() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4)) { system in
            let api = system.client
            #expect(try await api.send(.PUT, "/admin/cells/2/fault", #"{"mode":"fail"}"#, admin: true).status == 200)
            // Keys whose slot is in cell 1, whose weight keeps it from going first: the bind answers, and the creates
            // that draw cell 2 first move on.
            #expect(try await api.send(.PATCH, "/control/admin/cells/1", #"{"weight":10,"reason":"not first"}"#, admin: true).status == 200)
            let keys = Self.keys(system, "m1", prefix: "retry", count: 60, slotIn: 1)
            let created = try await concurrently(keys.count, width: 8) { try await api.create("m1", keys[$0]) }
            #expect(created.allSatisfy { $0.status == 201 && $0.json["cell_id"] as? Int != 2 }, "\(created.first { $0.status != 201 }?.text ?? "")")
            #expect(try await api.send(.DELETE, "/admin/cells/2/fault", admin: true).status == 200)
            system.clock.advance(seconds: 10)
            // Creates that tried cell 2 first moved their reservations on: the reconciler settles each move (cell 2 has
            // no order), in the round that lists it or, when the order's claim changed the entry first, once that change
            // is older than the grace.
            var round = await system.system.keyReconciler.runRound()
            system.clock.advance(seconds: 10)
            round.add(await system.system.keyReconciler.runRound())
            #expect(round.failures.isEmpty && round.closedDuplicates == 0 && round.settled > 0, "\(round)")
            for (key, answer) in zip(keys, created) {
                let again = try await api.create("m1", key)
                #expect(again.status == 200 && again["order_id"] == answer["order_id"])
                #expect(try await api.pay(answer["order_id"]!, "p-\(key)").status == 200)
            }
        }
    }

    @Test("one of four cells down: `available` takes every create and pays the unindexed ones once reconciled; `strict` refuses the keys of its slots")
    func slotPolicies() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4)) { system in
            let api = system.client
            #expect(try await api.send(.PUT, "/admin/cells/3/fault", #"{"mode":"fail"}"#, admin: true).status == 200)
            // Available (the default): every create answers; those whose slot is in cell 3 are unindexed.
            let available = try await concurrently(400, width: 8) { try await api.create("m1", "avail-\($0)") }
            let taken = available.filter { $0.status == 201 }
            let unindexed = taken.filter { $0["key_status"] == "UNINDEXED" }
            #expect(taken.count == 400, "\(available.first { $0.status != 201 }?.text ?? "")")
            #expect(!unindexed.isEmpty && unindexed.count < 200)
            for order in unindexed.prefix(5) {
                let pay = try await api.pay(order["order_id"]!, "p-\(order["order_id"]!)")
                #expect(pay.status == 503 && pay.code == "index_unavailable" && pay.retryAfter != nil, "\(pay.text)")
            }
            // Strict: the keys whose slot is in cell 3 are refused.
            let config = #"{"policy":{"index_slot_policies":{"normal":"strict"}},"reason":"strict keys"}"#
            #expect(try await api.send(.PUT, "/control/admin/config", config, admin: true).status == 200)
            let strict = try await concurrently(400, width: 8) { try await api.create("m1", "strict-\($0)") }
            let refused = strict.filter { $0.status == 503 }
            #expect(!refused.isEmpty && refused.allSatisfy { $0.code == "index_unavailable" })
            #expect(strict.filter { $0.status == 201 }.count + refused.count == 400)
            print(
                "create availability with one of four cells down: available \(taken.count)/400, strict \(strict.filter { $0.status == 201 }.count)/400"
            )

            // An unindexed order cannot be paid twice over: its repeat made in another cell is closed once the slot is back.
            #expect(try await api.send(.PUT, "/control/admin/config", #"{"policy":{}}"#, admin: true).status == 200)
            let key = Self.keys(system, "m1", prefix: "twice", count: 1, slotIn: 3)[0]
            let one = try await api.create("m1", key)
            let oneCell = try #require(one.json["cell_id"] as? Int)
            #expect(one["key_status"] == "UNINDEXED")
            #expect(try await api.send(.PUT, "/admin/cells/\(oneCell)/blacklist", "{}", admin: true).status == 200)
            let two = try await api.create("m1", key)
            #expect(two.status == 201 && two["key_status"] == "UNINDEXED" && two.json["cell_id"] as? Int != oneCell)
            #expect(try await api.send(.DELETE, "/admin/cells/3/fault", admin: true).status == 200)
            system.clock.advance(seconds: 10)
            let round = await system.system.keyReconciler.runRound(limit: 1000)
            #expect(round.failures.isEmpty && round.closedDuplicates == 1, "\(round)")
            let pays = [
                try await api.pay(one["order_id"]!, "p-one"), try await api.pay(two["order_id"]!, "p-two"),
            ]
            #expect(pays.filter { $0.status == 200 }.count == 1 && pays.filter { $0.code == "duplicate_order" }.count == 1, "\(pays.map(\.text))")
            for order in unindexed.prefix(5) { #expect(try await api.pay(order["order_id"]!, "p-\(order["order_id"]!)").status == 200) }
        }
    }

    @Test("an operator moves index slots online while creates, repeats and pays go on: every key keeps its one order; the old cell may then retire")
    func slotMoveOnline() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4)) { system in
            let api = system.client
            let before = try await concurrently(300, width: 8) { try await api.create("m-mv", "mv-\($0)") }
            #expect(before.allSatisfy { $0.status == 201 })
            for index in 0..<40 { #expect(try await api.pay(before[index]["order_id"]!, "p-mv-\(index)").status == 200) }
            // Cell 1 holds slots 0...63 from the first release: it cannot retire while it does.
            let early = try await api.send(.PATCH, "/control/admin/cells/1", #"{"state":"RETIRED","reason":"too early"}"#, admin: true)
            #expect(early.status == 400, "\(early.text)")

            var movingEntries: [MerchantKey: MerchantKeyEntry] = [:]
            for index in 0..<300 {
                let key = MerchantKey(merchantID: "m-mv", outTradeNo: "mv-\(index)")
                guard key.indexSlot < 64 else { continue }
                movingEntries[key] = try #require(try await system.system.cells[CellID(1)!]!.store.merchantKeyEntry(key, consistency: .strong))
            }
            // Load while the slots move: repeats of known keys, and new keys (their slot may be frozen for a moment).
            let answered = Tally()
            async let load = concurrently(1_200, width: 6) { index in
                defer { answered.add() }
                return index % 2 == 0
                    ? (index, try await api.create("m-mv", "mv-\((index / 2) % 300)"))
                    : (index, try await api.create("m-mv", "mv-new-\(index / 2)"))
            }
            try await waitUntil { answered.value >= 100 }
            let move = #"{"first":0,"last":63,"to":3,"reason":"retire cell 1"}"#
            let moved = try await api.send(.POST, "/control/admin/index-slots/move", move, admin: true)
            #expect(moved.status == 200, "\(moved.text)")
            #expect(moved.json["from"] as? [Int] == [1] && (moved.json["copied"] as? Int ?? 0) > 0)
            #expect(moved.json["copied"] as? Int == moved.json["dropped"] as? Int)
            let answers = try await load
            for (index, answer) in answers {
                #expect([200, 201].contains(answer.status), "\(index): \(answer.text)")
                if index % 2 == 0 { #expect(answer["order_id"] == before[(index / 2) % 300]["order_id"]) }
            }
            let table = system.system.proxy.routingTable
            #expect((0...63).allSatisfy { table.indexSlots.cells[$0] == CellID(3)! } && table.indexSlots.slots(of: CellID(1)!).isEmpty)
            // Run again: nothing left to move.
            let again = try await api.send(.POST, "/control/admin/index-slots/move", move, admin: true)
            #expect(again.status == 200 && (again.json["from"] as? [Int])?.isEmpty == true, "\(again.text)")

            // The entries of the moved slots are in cell 3 exactly as cell 1 had them: copied, not remade by later binds.
            for (key, entry) in movingEntries {
                #expect(try await system.system.cells[CellID(3)!]!.store.merchantKeyEntry(key, consistency: .strong) == entry, "\(key)")
                #expect(try await system.system.cells[CellID(1)!]!.store.merchantKeyEntry(key, consistency: .strong) == nil, "\(key)")
            }
            // The keys made before the move are found through the copy (the reconciler, which would rebuild entries from orders, has not run).
            for (index, order) in before.enumerated() {
                let found = try await api.send(.GET, "/v1/orders?merchant_id=m-mv&out_trade_no=mv-\(index)")
                #expect(found.status == 200 && found["order_id"] == order["order_id"], "mv-\(index): \(found.text)")
            }
            // Orders made unindexed while their slot was frozen are reconciled in the slot's new cell.
            let unindexed = answers.filter { $0.1["key_status"] == "UNINDEXED" }.count
            print("slot move under load: \(moved.json["copied"] ?? 0) entries copied; \(unindexed) creates made unindexed while their slot was frozen")
            system.clock.advance(seconds: 10)
            for _ in 0..<3 { _ = await system.system.keyReconciler.runRound(limit: 1000) }
            let fresh = Dictionary(answers.filter { $0.0 % 2 == 1 }.map { ("mv-new-\($0.0 / 2)", $0.1["order_id"]!) }, uniquingKeysWith: { first, _ in first })
            let all = Dictionary(uniqueKeysWithValues: before.enumerated().map { ("mv-\($0.offset)", $0.element["order_id"]!) }).merging(fresh) { $1 }
            for (key, id) in all {
                let found = try await api.send(.GET, "/v1/orders?merchant_id=m-mv&out_trade_no=\(key)")
                #expect(found.status == 200 && found["order_id"] == id, "\(key): \(found.text)")
                let repeated = try await api.create("m-mv", key)
                #expect(repeated.status == 200 && repeated["order_id"] == id, "\(key): \(repeated.text)")
            }
            var stored = 0
            for service in system.system.cells.values { stored += try await service.store.orderCount() }
            #expect(stored == all.count, "one order per key across the cells")
            for index in 40..<80 { #expect(try await api.pay(before[index]["order_id"]!, "p-mv-\(index)").status == 200) }
            // Nothing is left in cell 1's index; the slots stay frozen there.
            let leftover = try await system.system.cells[CellID(1)!]!.frozenMerchantKeys(inSlots: Set(0...63), after: nil, limit: 5000)
            #expect(leftover.entries.isEmpty)

            // Refusals: bad ranges and cells, and a viewer.
            for (body, status) in [(#"{"first":9,"last":3,"to":2}"#, 400), (#"{"first":0,"last":256,"to":2}"#, 400), (#"{"first":0,"last":3,"to":77}"#, 404)] {
                #expect(try await api.send(.POST, "/control/admin/index-slots/move", body, admin: true).status == status, "\(body)")
            }
            #expect(try await api.send(.POST, "/control/admin/index-slots/move", move).status == 401)
            let retired = try await api.send(.PATCH, "/control/admin/cells/1", #"{"state":"RETIRED","reason":"its slots moved"}"#, admin: true)
            #expect(retired.status == 200, "\(retired.text)")
        }
    }

    @Test("the health checker's probes keep off the slots being moved: a move does not fail its cell's probe")
    func probesKeepOffMovingSlots() async throws {
        // Calls of 30 s: the copy held below never outlasts the mover's call.
        try await TestSystem.run(layout: .singlePartition(cells: 4), proxy: ProxyConfiguration(cellCallTimeout: .seconds(30))) { system in
            let api = system.client
            let cell1 = try #require(CellID(1))
            let source = try #require(system.system.cells[cell1])
            #expect(system.system.control.routingTable.indexSlots.slots(of: cell1) == Array(0...63))
            // Entries to copy, then the copy into cell 2 held 5 s (its first call), so all of cell 1's slots stay frozen
            // meanwhile: the health round below takes milliseconds.
            for key in Self.keys(system, "m1", prefix: "moving", count: 5, slotIn: 1) { #expect(try await api.create("m1", key).status == 201) }
            #expect(try await api.send(.PUT, "/admin/cells/2/fault", #"{"mode":"latency","latency_ms":5000,"calls":1}"#, admin: true).status == 200)
            let move = Task { try await api.send(.POST, "/control/admin/index-slots/move", #"{"first":0,"last":63,"to":2,"reason":"spread"}"#, admin: true) }
            try await waitUntil(timeout: .seconds(10)) { try await source.store.frozenIndexSlots() == Set(0...63) }
            let round = await system.system.healthChecker.runRound()
            #expect(system.system.control.routingTable.indexSlots.cells[0] == cell1, "the round ran before the slots were re-pointed")
            #expect(round.probes[cell1] == .some(nil), "cell 1's probe, taken off its moving slots, passed: \(round.probes)")
            let moved = try await move.value
            #expect(moved.status == 200, "\(moved.text)")
        }
    }

    @Test("a create whose bind meets its slot frozen by a move waits for the re-pointing release and binds in the new cell: no unindexed order")
    func bindsWaitForAMovingSlot() async throws {
        // Calls of 30 s, and a create refused by a frozen slot waits up to 30 s for the re-pointing release: the copy held
        // below for 5 s outlasts neither.
        try await TestSystem.run(
            layout: .singlePartition(cells: 4), proxy: ProxyConfiguration(cellCallTimeout: .seconds(30), slotRefusalWait: .seconds(30))
        ) { system in
            let api = system.client
            let cell1 = try #require(CellID(1))
            // Cells 1 (the slots' cell) and 4 (where they move) take no new orders: the keys of cell 1's slots bind there
            // in a call of their own (the two-call path), and cell 4's first call is the move's copy.
            for cell in [1, 4] {
                #expect(try await api.send(.PATCH, "/control/admin/cells/\(cell)", #"{"weight":0,"reason":"no new orders"}"#, admin: true).status == 200)
            }
            let keys = Self.keys(system, "m1", prefix: "frozen-bind", count: 6, slotIn: 1)
            for key in keys.prefix(5) { #expect(try await api.create("m1", key).status == 201) }
            // The copy into cell 4 held 5 s: cell 1's slots stay frozen meanwhile, and the create below starts within them.
            #expect(try await api.send(.PUT, "/admin/cells/4/fault", #"{"mode":"latency","latency_ms":5000,"calls":1}"#, admin: true).status == 200)
            let move = Task { try await api.send(.POST, "/control/admin/index-slots/move", #"{"first":0,"last":63,"to":4,"reason":"spread"}"#, admin: true) }
            let source = try #require(system.system.cells[cell1])
            try await waitUntil(timeout: .seconds(10)) { try await source.store.frozenIndexSlots() == Set(0...63) }
            #expect(system.system.proxy.routingTable.indexSlots.cells[0] == cell1, "the create below starts while the slots are frozen in cell 1")
            let created = try await api.create("m1", keys[5])
            #expect(system.system.proxy.routingTable.indexSlots.cells[0] == CellID(4)!, "it was answered after the re-point")
            #expect(created.status == 201 && created["key_status"] == "RESERVED", "bound in the slot's new cell, not unindexed: \(created.text)")
            let moved = try await move.value
            #expect(moved.status == 200, "\(moved.text)")
            let found = try await api.send(.GET, "/v1/orders?merchant_id=m1&out_trade_no=\(keys[5])")
            #expect(found.status == 200 && found["order_id"] == created["order_id"], "\(found.text)")
        }
    }

    @Test("orders that must wait do not hold back newer ones: the reconciler's pages move on past them")
    func waitingOrdersDoNotHoldBackNewerOnes() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4)) { system in
            let api = system.client
            func request(_ key: String) throws -> CreateOrderRequest {
                try CreateOrderRequest(merchantID: "m-wait", outTradeNo: key, amount: 1000, currency: "CNY", description: nil, expireSeconds: nil)
            }
            _ = api
            // Two keys reserved for cell 2, which has their orders, marked verified by hand so that they never claim
            // their keys: the keys stay reserved for a cell that has an order.
            let owners = ["wait-0", "wait-1"]
            let cell2 = system.system.cells[CellID(2)!]!
            for key in owners {
                let mk = MerchantKey(merchantID: "m-wait", outTradeNo: key)
                let slot = system.system.cells[system.system.proxy.routingTable.indexCell(for: mk)!]!
                _ = try await slot.bindMerchantKey(mk, candidate: CellID(2)!, attempt: 1)
                let order = try await cell2.create(try request(key)).order
                try await cell2.setKeyStatus(.verified, of: [order.id])
            }
            // Rivals of those keys in cell 1: their claims find the keys reserved for another cell with an order, so they wait.
            let cell1 = system.system.cells[CellID(1)!]!
            for key in owners { _ = try await cell1.create(try request(key)) }
            // Newer orders in cell 1, behind the rivals in the oldest-first list.
            var newer: [OrderID] = []
            for index in 0..<3 { newer.append(try await cell1.create(try request("later-\(index)")).order.id) }
            system.clock.advance(seconds: 10)
            var waited = 0
            for _ in 0..<12 {
                let round = await system.system.keyReconciler.runRound(limit: 2)
                waited += round.waiting
                var verified = 0
                for id in newer where try await cell1.order(id, consistency: .strong).keyStatus == .verified { verified += 1 }
                if verified == newer.count { break }
            }
            for id in newer { #expect(try await cell1.order(id, consistency: .strong).keyStatus == .verified, "\(id)") }
            #expect(waited >= 2, "the rivals waited")
        }
    }

    @Test("upgrading from a release without the index: repeats find the orders made before it, in drained cells too; the backfill ends by itself")
    func upgradeBackfillsTheIndex() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4)) { system in
            let api = system.client
            let before = try await concurrently(60, width: 8) { try await api.create("m-up", "up-\($0)") }
            #expect(before.allSatisfy { $0.status == 201 })
            for index in 0..<20 { #expect(try await api.pay(before[index]["order_id"]!, "p-up-\(index)").status == 200) }

            // As the upgrade finds them: no index entries, every order unindexed (the cells' migration), and a routing
            // table written before the index (no slot map).
            for (cell, service) in system.system.cells {
                let all = Array(0..<IndexSlots.count)
                try await service.setIndexSlots(all, frozen: true)
                var after: MerchantKey?
                repeat {
                    let page = try await service.frozenMerchantKeys(inSlots: Set(all), after: after, limit: 1000)
                    _ = try await service.deleteFrozenMerchantKeys(page.entries.map(\.key))
                    after = page.next
                } while after != nil
                try await service.setIndexSlots(all, frozen: false)
                let mine = try before.map { try OrderID(parsing: $0["order_id"]!) }.filter { $0.cell == cell }
                try await service.setKeyStatus(.unindexed, of: mine)
            }
            var document = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(system.system.control.routingTable)) as! [String: Any]
            document["index_slots"] = nil
            document["index_backfill"] = nil
            let written = try JSONDecoder().decode(RoutingTable.self, from: try JSONSerialization.data(withJSONObject: document))
            #expect(written.indexBackfill)
            _ = try await system.system.control.change(author: "test", reason: "the table of an earlier release") { base in
                written.publishedAs(version: base.version + 1)
            }
            #expect(system.system.proxy.routingTable.indexBackfill)
            // Two keys an earlier release made twice, in another cell: once with the first order paid and the second
            // not, once with both paid (it paid without any index).
            var rivals: [OrderID] = []
            system.clock.advance(seconds: 1)
            for index in 0..<2 {
                let first = try OrderID(parsing: before[index]["order_id"]!)
                let other = CellID(unchecked: UInt16(first.cell.rawValue % 4 + 1))
                var made = try await system.system.cells[other]!.create(
                    try CreateOrderRequest(merchantID: "m-up", outTradeNo: "up-\(index)", amount: 1000, currency: "CNY", description: nil, expireSeconds: nil),
                    keyStatus: .unindexed
                ).order
                if index == 1 {
                    made = try await system.system.cells[other]!.apply(.pay(paymentID: "old-release", amount: 1000, keyClaimed: true), to: made.id).order
                    try await system.system.cells[other]!.setKeyStatus(.unindexed, of: [made.id])  // as the migration leaves it
                }
                rivals.append(made.id)
            }
            let rivalPay = try await api.pay(rivals[0].description, "p-rival")
            #expect(rivalPay.status == 409 && rivalPay.code == "duplicate_order", "the paid order keeps the key: \(rivalPay.text)")

            // New orders go to cells 3 and 4 only: without the search, repeats of keys in cells 1 and 2 would be made again there.
            for cell in [1, 2] {
                #expect(try await api.send(.PATCH, "/control/admin/cells/\(cell)", #"{"weight":0,"reason":"drain"}"#, admin: true).status == 200)
            }
            for (index, order) in before.enumerated() {
                let repeated = try await api.create("m-up", "up-\(index)")
                #expect(repeated.status == 200 && repeated["order_id"] == order["order_id"], "up-\(index): \(repeated.text)")
                #expect(repeated["status"] == (index < 20 ? "PAID" : "CREATED"))
            }
            #expect(try await api.create("m-up", "up-30", amount: 777).code == "out_trade_no_conflict")
            for index in 20..<30 { #expect(try await api.pay(before[index]["order_id"]!, "p-up-\(index)").status == 200) }
            var stored = 0
            for service in system.system.cells.values { stored += try await service.store.orderCount() }
            #expect(stored == 62, "no order was made twice (but the two an earlier release made)")

            // The reconciler gives every earlier order its key, then ends the backfill.
            system.clock.advance(seconds: 10)
            for _ in 0..<5 where system.system.control.routingTable.indexBackfill {
                _ = await system.system.keyReconciler.runRound(limit: 1000)
            }
            #expect(!system.system.control.routingTable.indexBackfill)
            let closed = try await api.send(.GET, "/v1/orders/\(rivals[0])")
            #expect(closed["status"] == "CLOSED" && closed["key_status"] == "DUPLICATE", "\(closed.text)")
            let paidTwice = try await api.send(.GET, "/v1/orders/\(rivals[1])")
            #expect(paidTwice["status"] == "PAID" && paidTwice["key_status"] == "DUPLICATE", "\(paidTwice.text)")
            for (index, order) in before.enumerated() {
                let found = try await api.send(.GET, "/v1/orders?merchant_id=m-up&out_trade_no=up-\(index)")
                #expect(found.status == 200 && found["order_id"] == order["order_id"], "up-\(index): \(found.text)")
            }
            #expect(try await api.create("m-up", "up-new").status == 201)
        }
    }
}
