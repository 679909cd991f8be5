import CellRouting
import Foundation
import OrderModel
import OrderProxy
import Testing

@Suite("Late binding, order retry and fault containment over HTTP")
struct PlacementOverHTTPTests {
    /// The clock stands still here, so every cell's recent load reads 0 and
    /// shares follow the weights alone; the next test moves it.
    @Test func ordersOfOneRunSpreadEvenlyOverEveryActiveCell() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4)) { system in
            let api = system.client
            let cells = try await concurrently(10_000, width: 16) { index in
                let created = try await api.create("m-\(index % 50)", "spread-\(index)")
                #expect(created.status == 201)
                return created.json["cell_id"] as? Int ?? -1
            }
            var counts: [Int: Int] = [:]
            for cell in cells { counts[cell, default: 0] += 1 }
            #expect(Set(counts.keys) == [1, 2, 3, 4], "every active cell takes orders: \(counts)")
            let mean = 10_000.0 / 4
            for (cell, count) in counts {
                #expect(Double(count) <= 1.5 * mean, "cell \(cell) took \(count), mean \(mean)")
            }
            print("late binding over 10 000 creates: \(counts.sorted { $0.key < $1.key })")
        }
    }

    @Test("hotspot balancing: a cell that took more of the last window's load gets fewer new orders, and more once it cooled")
    func newOrdersGoAgainstRecentLoad() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 4)) { system in
            let api = system.client
            func creates(_ count: Int, _ prefix: String) async throws -> [Int: Int] {
                let cells = try await concurrently(count, width: 16) { index in
                    try await api.create("m-\(index % 50)", "\(prefix)-\(index)").json["cell_id"] as? Int ?? -1
                }
                return cells.reduce(into: [:]) { $0[$1, default: 0] += 1 }
            }
            // An order of cell 1, to make cell 1 busy by reading it.
            var hotOrder: String?
            for index in 0..<200 where hotOrder == nil {
                let created = try await api.create("m1", "find-cell-1-\(index)")
                if created.json["cell_id"] as? Int == 1 { hotOrder = created["order_id"] }
            }
            let order = try #require(hotOrder)
            // Loads are counted per window of 1 s and read from the last completed one.
            system.clock.advance(milliseconds: 2000)
            // This window: 600 calls to cell 1, none to the others.
            _ = try await concurrently(600, width: 16) { _ in try await api.send(.GET, "/v1/orders/\(order)").status }
            system.clock.advance(milliseconds: 1000)
            // Shares are weight / (load + mean load): cell 1 gets 1/750 against 1/150 for each other cell, about 6 %.
            let hot = try await creates(400, "after-hot")
            #expect(hot[1, default: 0] < 60, "the hot cell gets well under its even share (100 of 400): \(hot)")
            for cell in 2...4 { #expect(hot[cell, default: 0] > hot[1, default: 0] * 2, "\(hot)") }
            // That window's creates went mostly to cells 2–4: now cell 1 is the cool one (about 37 %).
            system.clock.advance(milliseconds: 1000)
            let cooled = try await creates(400, "after-cool")
            // (Every create also writes its key to the index slot's cell: load spread evenly over all four, which narrows the contrast.)
            #expect(cooled[1, default: 0] > 100, "the cooled cell gets more than its even share (100 of 400): \(cooled)")
            print("hotspot balancing: after 600 reads of cell 1 \(hot.sorted { $0.key < $1.key }), a window later \(cooled.sorted { $0.key < $1.key })")
        }
    }

    @Test func merchantsStayInTheirPartition() async throws {
        try await TestSystem.run(layout: .standard) { system in
            let api = system.client
            let vip = try await concurrently(200, width: 8) { index in
                try await api.create("vip-merchant", "vip-\(index)").json["cell_id"] as? Int ?? -1
            }
            let normal = try await concurrently(200, width: 8) { index in
                try await api.create("someone", "n-\(index)").json["cell_id"] as? Int ?? -1
            }
            #expect(Set(vip) == [3, 4])
            #expect(Set(normal) == [1, 2])
        }
    }

    @Test func aFailingCellIsRetriedAroundAndOnlyItsOwnOrdersSuffer() async throws {
        let proxy = ProxyConfiguration(
            retry: OrderRetryPolicy(maximumAttempts: 3),
            outliers: OutlierPolicy(consecutiveFailures: 5, baseEjectionMilliseconds: 30_000, maximumEjectionMilliseconds: 300_000)
        )
        try await TestSystem.run(layout: .singlePartition(cells: 4), proxy: proxy) { system in
            let api = system.client
            // Orders placed before the fault, in every cell.
            let before = try await concurrently(200, width: 8) { index in try await api.create("m1", "before-\(index)") }
            let inCell2 = before.filter { $0.json["cell_id"] as? Int == 2 }.compactMap { $0["order_id"] }
            let elsewhere = before.filter { $0.json["cell_id"] as? Int != 2 }.compactMap { $0["order_id"] }
            #expect(!inCell2.isEmpty && !elsewhere.isEmpty)
            // Seconds after their creates every order holds its key (most from their creates on, in the cell of their
            // key's slot; the reconciler verifies the others): their pays need no index slot (some are in cell 2).
            system.clock.advance(seconds: 10)
            let verified = await system.system.keyReconciler.runRound()
            #expect(verified.failures.isEmpty, "\(verified)")
            for order in before { #expect(order["key_status"] == "VERIFIED" || order["key_status"] == "RESERVED") }
            #expect(before.filter { $0["key_status"] == "RESERVED" }.count == verified.verified, "\(verified)")

            let fault = try await api.send(.PUT, "/admin/cells/2/fault", #"{"mode":"fail"}"#, admin: true)
            #expect(fault.status == 200 && fault["fault"] == "fail")

            // Every create succeeds: order retry skips cell 2, then outlier detection ejects it.
            let during = try await concurrently(1_000, width: 8) { index in try await api.create("m2", "during-\(index)") }
            #expect(during.allSatisfy { $0.status == 201 }, "\(during.filter { $0.status != 201 }.first?.text ?? "")")
            #expect(!during.contains { $0.json["cell_id"] as? Int == 2 })
            let cells = try await api.send(.GET, "/admin/cells", admin: true)
            let cell2 = (cells.json["cells"] as? [[String: Any]])?.first { $0["cell_id"] as? Int == 2 }
            #expect(cell2?["ejected_until"] is String, "outlier detection took cell 2 out of placement")

            // Fault containment: only cell 2's existing orders are unavailable.
            for id in inCell2.prefix(10) {
                let read = try await api.send(.GET, "/v1/orders/\(id)")
                #expect(read.status == 503 && read.code == "cell_unavailable")
                let pay = try await api.pay(id, "p")
                #expect(pay.status == 503 && pay.code == "cell_unavailable")
            }
            for id in elsewhere.prefix(30) {
                #expect(try await api.send(.GET, "/v1/orders/\(id)").status == 200)
                #expect(try await api.pay(id, "p-\(id)").status == 200)
            }

            // The fault clears; once the ejection lapses, cell 2 takes new orders again.
            #expect(try await api.send(.DELETE, "/admin/cells/2/fault", admin: true).status == 200)
            for id in inCell2.prefix(10) { #expect(try await api.send(.GET, "/v1/orders/\(id)").status == 200) }
            system.clock.advance(seconds: 31)
            let after = try await concurrently(400, width: 8) { index in try await api.create("m3", "after-\(index)") }
            #expect(after.allSatisfy { $0.status == 201 })
            #expect(after.contains { $0.json["cell_id"] as? Int == 2 }, "cell 2 takes traffic again")
        }
    }

    @Test func noCellAvailableWhenEveryCellFails() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 2)) { system in
            let api = system.client
            for cell in [1, 2] { _ = try await api.send(.PUT, "/admin/cells/\(cell)/fault", #"{"mode":"fail"}"#, admin: true) }
            let refused = try await api.create("m1", "nowhere")
            #expect(refused.status == 503 && refused.code == "no_cell_available")
        }
    }

    @Test func blacklistedCellsTakeNoNewOrders() async throws {
        try await TestSystem.run(layout: .singlePartition(cells: 3)) { system in
            let api = system.client
            let listed = try await api.send(.PUT, "/admin/cells/1/blacklist", #"{"reason":"disk replacement"}"#, admin: true)
            #expect(listed.status == 200)
            #expect((listed.json["blacklist"] as? [String: Any])?["reason"] as? String == "disk replacement")
            let during = try await concurrently(300, width: 8) { index in try await api.create("m1", "bl-\(index)") }
            #expect(during.allSatisfy { $0.status == 201 && $0.json["cell_id"] as? Int != 1 })
            // Existing orders of a blacklisted cell are still served.
            #expect(try await api.send(.DELETE, "/admin/cells/1/blacklist", admin: true).status == 200)
            let after = try await concurrently(300, width: 8) { index in try await api.create("m1", "unbl-\(index)") }
            #expect(after.contains { $0.json["cell_id"] as? Int == 1 })
            let badCell = try await api.send(.PUT, "/admin/cells/77/blacklist", "{}", admin: true)
            #expect(badCell.status == 404 && badCell.code == "not_found")
            let badExpiry = try await api.send(.PUT, "/admin/cells/1/blacklist", #"{"expires_in_seconds":9223372036854775807}"#, admin: true)
            #expect(badExpiry.status == 400 && badExpiry.code == "invalid_request", "a huge expiry is refused, not an overflow")
            let badMode = try await api.send(.PUT, "/admin/cells/1/fault", #"{"mode":"explode"}"#, admin: true)
            #expect(badMode.status == 400 && badMode.code == "invalid_request")
        }
    }

    @Test func latencyFaultsHitTheCallDeadlineAndAreRetriedElsewhere() async throws {
        let proxy = ProxyConfiguration(cellCallTimeout: .milliseconds(200))
        try await TestSystem.run(layout: .singlePartition(cells: 2), proxy: proxy) { system in
            let api = system.client
            _ = try await api.send(.PUT, "/admin/cells/1/fault", #"{"mode":"latency","latency_ms":1000}"#, admin: true)
            let created = try await concurrently(20, width: 4) { index in try await api.create("m1", "slow-\(index)") }
            #expect(created.allSatisfy { $0.status == 201 && $0.json["cell_id"] as? Int == 2 })
        }
    }
}
