import OrderModel
import Testing

@testable import CellRouting

@Suite("Cell selection, order retry and outlier detection")
struct PlacementTests {
    let now = Timestamp(secondsSinceEpoch: 1_800_000_000)

    func cell(_ number: Int) -> CellID { CellID(number)! }

    func candidates(_ loads: [Int], weight: Int = 100) -> [PlacementCandidate] {
        loads.enumerated().map { PlacementCandidate(cell: cell($0.offset + 1), weight: weight, recentLoad: $0.element) }
    }

    @Test func selectionIsDeterministicForASeed() {
        var first = SplitMix64(seed: 42)
        var second = SplitMix64(seed: 42)
        let options = candidates([0, 0, 0, 0])
        for _ in 0..<100 {
            #expect(CellSelector.choose(from: options, using: &first) == CellSelector.choose(from: options, using: &second))
        }
        var a = SplitMix64(seedingFrom: "m1", "t-1")
        var b = SplitMix64(seedingFrom: "m1", "t-1")
        #expect(a.next() == b.next())
        var c = SplitMix64(seedingFrom: "m1t", "-1")
        var d = SplitMix64(seedingFrom: "m1", "t-1")
        #expect(c.next() != d.next())
    }

    @Test func equalLoadSpreadsEvenly() {
        var random = SplitMix64(seed: 7)
        var counts: [CellID: Int] = [:]
        let options = candidates([10, 10, 10, 10])
        for _ in 0..<40_000 { counts[CellSelector.choose(from: options, using: &random)!, default: 0] += 1 }
        for number in 1...4 { #expect((9_400...10_600).contains(counts[cell(number)] ?? 0)) }
    }

    @Test func hotCellsGetFewerNewOrders() {
        var random = SplitMix64(seed: 8)
        var counts: [CellID: Int] = [:]
        // Cell 1 took three times the load of the others in the last window.
        let options = candidates([300, 100, 100, 100])
        for _ in 0..<40_000 { counts[CellSelector.choose(from: options, using: &random)!, default: 0] += 1 }
        let hot = Double(counts[cell(1)] ?? 0)
        let cool = Double(counts[cell(2)] ?? 0)
        // Shares are weight / (load + mean): 1/(300+150) vs 1/(100+150), a ratio of 0.56.
        #expect(hot / cool > 0.5 && hot / cool < 0.62)
    }

    @Test func weightsSteerShares() {
        var random = SplitMix64(seed: 9)
        var counts: [CellID: Int] = [:]
        let options = [
            PlacementCandidate(cell: cell(1), weight: 300, recentLoad: 0),
            PlacementCandidate(cell: cell(2), weight: 100, recentLoad: 0),
            PlacementCandidate(cell: cell(3), weight: 0, recentLoad: 0),
        ]
        for _ in 0..<40_000 { counts[CellSelector.choose(from: options, using: &random)!, default: 0] += 1 }
        #expect(counts[cell(3)] == nil)
        let ratio = Double(counts[cell(1)]!) / Double(counts[cell(2)]!)
        #expect(ratio > 2.8 && ratio < 3.2)
        #expect(CellSelector.choose(from: [], using: &random) == nil)
    }

    @Test("the key's slot cell goes first when it is as good a choice as any: through load's ups and downs, not drained, light or hot")
    func slotCellGoesFirstWhenItQualifies() {
        let even = (1...4).map { PlacementCandidate(cell: cell($0), weight: 100, recentLoad: [90, 110, 100, 120][$0 - 1]) }
        #expect((1...4).allSatisfy { CellSelector.qualifies(cell($0), among: even) })
        var hot = even
        hot[0].recentLoad = 400
        #expect(!CellSelector.qualifies(cell(1), among: hot) && CellSelector.qualifies(cell(2), among: hot))
        var light = even
        light[0].weight = 10
        #expect(!CellSelector.qualifies(cell(1), among: light))
        light[0].weight = 0
        #expect(!CellSelector.qualifies(cell(1), among: light))
        #expect(!CellSelector.qualifies(cell(9), among: even))
        var random = SplitMix64(seed: 3)
        var retry = OrderRetry(candidates: even, policy: OrderRetryPolicy(maximumAttempts: 3), preferring: cell(3))
        #expect(retry.nextCell(using: &random) == cell(3))
        retry.attemptFailed()
        #expect(retry.nextCell(using: &random) != cell(3), "preferred once; a failed cell is never tried again")
    }

    @Test func orderRetryExcludesFailedCellsAndStopsAtTheLimit() {
        var random = SplitMix64(seed: 10)
        var retry = OrderRetry(candidates: candidates([0, 0, 0, 0, 0]), policy: OrderRetryPolicy(maximumAttempts: 3))
        var tried: [CellID] = []
        while let next = retry.nextCell(using: &random) {
            #expect(!tried.contains(next), "a failed cell is never tried twice in one create")
            tried.append(next)
            retry.attemptFailed()
        }
        #expect(tried.count == 3)
        #expect(retry.state == .exhausted)
        #expect(retry.failedCells == tried)

        var second = OrderRetry(candidates: candidates([0, 0]), policy: OrderRetryPolicy(maximumAttempts: 5))
        _ = second.nextCell(using: &random)
        second.attemptFailed()
        let other = second.nextCell(using: &random)
        #expect(other != nil && other != second.failedCells.first)
        second.attemptSucceeded()
        #expect(second.state == .placed(other!))
    }

    @Test func outlierDetectionEjectsWithGrowingBackoff() {
        var detector = OutlierDetector(
            policy: OutlierPolicy(consecutiveFailures: 3, baseEjectionMilliseconds: 1000, maximumEjectionMilliseconds: 2500)
        )
        let sick = cell(2)
        do { let ejected = detector.recordFailure(sick, at: now); #expect(!ejected) }
        do { let ejected = detector.recordFailure(sick, at: now); #expect(!ejected) }
        detector.recordSuccess(sick)  // a success resets the count
        do { let ejected = detector.recordFailure(sick, at: now); #expect(!ejected) }
        do { let ejected = detector.recordFailure(sick, at: now); #expect(!ejected) }
        do { let ejected = detector.recordFailure(sick, at: now); #expect(ejected) }
        #expect(detector.isEjected(sick, at: now.adding(milliseconds: 999)))
        #expect(!detector.isEjected(sick, at: now.adding(milliseconds: 1000)))
        // Back from its first ejection, one failure ejects it again, for twice as long.
        let later = now.adding(milliseconds: 1000)
        do { let ejected = detector.recordFailure(sick, at: later); #expect(ejected) }
        #expect(detector.isEjected(sick, at: later.adding(milliseconds: 1999)))
        #expect(!detector.isEjected(sick, at: later.adding(milliseconds: 2000)))
        // Capped at the maximum.
        let third = later.adding(milliseconds: 2000)
        do { let ejected = detector.recordFailure(sick, at: third); #expect(ejected) }
        #expect(!detector.isEjected(sick, at: third.adding(milliseconds: 2500)))
        #expect(!detector.isEjected(cell(1), at: now))
    }

    @Test func loadTrackerReportsTheLastCompletedWindow() {
        var tracker = CellLoadTracker(windowMilliseconds: 1000, now: now)
        for _ in 0..<5 { tracker.record(cell(1), at: now) }
        do { let load = tracker.recentLoad(of: cell(1), at: now.adding(milliseconds: 999)); #expect(load == 0) }
        do { let load = tracker.recentLoad(of: cell(1), at: now.adding(milliseconds: 1000)); #expect(load == 5) }
        do { let load = tracker.recentLoad(of: cell(1), at: now.adding(milliseconds: 2000)); #expect(load == 0) }
        tracker.record(cell(1), at: now.adding(milliseconds: 2500))
        do { let load = tracker.recentLoad(of: cell(1), at: now.adding(milliseconds: 5000)); #expect(load == 0, "idle windows forget old load") }
    }

    @Test func routingTableChoosesCandidatesByPartitionStateAndBlacklist() throws {
        let table = try RoutingTable(
            cells: [
                CellRoute(id: cell(1), partition: "normal"),
                CellRoute(id: cell(2), partition: "normal", state: .sealed),
                CellRoute(id: cell(3), partition: "normal", weight: 0),
                CellRoute(id: cell(4), partition: "normal"),
                CellRoute(id: cell(5), partition: "vip"),
            ],
            partitions: [Partition(name: "normal", kind: .normal), Partition(name: "vip", kind: .vip)],
            defaultPartition: "normal", merchantPartitions: ["big": "vip"]
        )
        #expect(table.partition(forMerchant: "big") == "vip")
        #expect(table.partition(forMerchant: "small") == "normal")
        #expect(table.placementCandidates(in: "normal", at: now).map(\.id) == [cell(1), cell(4)])
        let blacklisted = try table.blacklisting(cell(4), BlacklistEntry(reason: "drill", since: now, until: now.adding(seconds: 60)))
        #expect(blacklisted.version == table.version + 1)
        #expect(blacklisted.placementCandidates(in: "normal", at: now).map(\.id) == [cell(1)])
        #expect(blacklisted.placementCandidates(in: "normal", at: now.adding(seconds: 60)).map(\.id) == [cell(1), cell(4)])
        #expect(try blacklisted.unblacklisting(cell(4)).placementCandidates(in: "normal", at: now).map(\.id) == [cell(1), cell(4)])
        #expect(throws: RoutingTableError.unknownCell(cell(9))) { try table.blacklisting(cell(9), BlacklistEntry(reason: "x", since: now)) }
        #expect(throws: RoutingTableError.unknownPartition("gold")) {
            try RoutingTable(cells: [CellRoute(id: cell(1), partition: "gold")], partitions: [Partition(name: "normal", kind: .normal)], defaultPartition: "normal")
        }
    }
}

import Foundation

@Suite("Routing table document")
struct RoutingTableDocumentTests {
    @Test func roundTripsThroughJSON() throws {
        let now = Timestamp(secondsSinceEpoch: 1_800_000_000)
        let table = try RoutingTable(
            version: 7,
            cells: [
                CellRoute(id: CellID(1)!, partition: "normal", endpoints: [CellServiceEndpoint(host: "127.0.0.1", port: 7001), CellServiceEndpoint(host: "127.0.0.1", port: 7002)],
                          storage: CellStorageRoute(primary: try PostgresEndpoint(parsing: "postgres://u@127.0.0.1:5433/cell_1"), replicas: [try PostgresEndpoint(parsing: "postgres://u@127.0.0.1:5434/cell_1")])),
                CellRoute(id: CellID(2)!, partition: "vip", state: .sealed, weight: 50),
            ],
            partitions: [Partition(name: "normal", kind: .normal), Partition(name: "vip", kind: .vip)],
            defaultPartition: "normal", merchantPartitions: ["big": "vip"],
            blacklist: [CellID(1)!: BlacklistEntry(reason: "drill", since: now, until: now.adding(seconds: 5))]
        )
        let data = try JSONEncoder().encode(table)
        #expect(try JSONDecoder().decode(RoutingTable.self, from: data) == table)
        let broken = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\"default_partition\":\"normal\"", with: "\"default_partition\":\"gold\"")
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(RoutingTable.self, from: Data(broken.utf8)) }
    }
}
