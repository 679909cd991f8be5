import Foundation
import OrderModel
import Testing

@testable import CellRouting

@Suite("Index slots of the merchant-key index")
struct IndexSlotsTests {
    static let cells = (1...4).map { CellID(unchecked: UInt16($0)) }

    static func table(_ cells: [CellID], slots: IndexSlots? = nil, states: [CellID: CellState] = [:]) throws -> RoutingTable {
        try RoutingTable(
            cells: cells.map { CellRoute(id: $0, partition: "normal", state: states[$0] ?? .active) },
            partitions: [Partition(name: "normal", kind: .normal)], defaultPartition: "normal", indexSlots: slots
        )
    }

    @Test("a first release deals the slots in equal runs; adding a cell moves none; the JSON is runs and reads back exactly")
    func dealtAndKept() throws {
        let table = try Self.table(Self.cells)
        #expect(table.indexSlots.slots(of: Self.cells[0]) == Array(0...63))
        #expect(table.indexSlots.slots(of: Self.cells[3]) == Array(192...255))
        let grown = try table.addingCell(CellRoute(id: CellID(unchecked: 9), partition: "normal"))
        #expect(grown.indexSlots == table.indexSlots, "adding a cell moves no slot")
        #expect(grown.indexSlots.slots(of: CellID(unchecked: 9)).isEmpty)

        let json = String(decoding: try JSONEncoder().encode(table), as: UTF8.self)
        let runs = try #require((try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["index_slots"] as? [[String: Int]])
        #expect(runs == [["first": 0, "last": 63, "cell": 1], ["first": 64, "last": 127, "cell": 2], ["first": 128, "last": 191, "cell": 3], ["first": 192, "last": 255, "cell": 4]])
        #expect(try JSONDecoder().decode(RoutingTable.self, from: Data(json.utf8)) == table)

        // A release written before the index existed (no index_slots) deals the map from its own cells.
        var object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        object["index_slots"] = nil
        let old = try JSONDecoder().decode(RoutingTable.self, from: try JSONSerialization.data(withJSONObject: object))
        #expect(old.indexSlots == table.indexSlots)
    }

    @Test("a key's slot is stable and spreads; moving slots re-points only them; a rollback keeps the current map")
    func slotsAndMoves() throws {
        let key = MerchantKey(merchantID: "m1", outTradeNo: "demo-1")
        // Pinned: the slot function is a stored contract (entries live where it says).
        #expect(key.slot(of: 256) == 216 && MerchantKey(merchantID: "m1", outTradeNo: "demo-2").slot(of: 256) == 208)
        #expect(MerchantKey(merchantID: "shop", outTradeNo: "20261203000001").slot(of: 256) == 107)
        // Numbered trades spread over the quarters of the slots (four cells' worth) like any others.
        var quarters = [Int](repeating: 0, count: 4)
        for index in 0..<40 { quarters[MerchantKey(merchantID: "m1", outTradeNo: "demo-\(index)").slot(of: 256) / 64] += 1 }
        #expect(quarters.min()! >= 4, "\(quarters)")
        #expect(MerchantKey(merchantID: "m1", outTradeNo: "x").slot(of: 256) != MerchantKey(merchantID: "m1x", outTradeNo: "").slot(of: 256)
            || MerchantKey(merchantID: "m1", outTradeNo: "y").slot(of: 256) != MerchantKey(merchantID: "m1y", outTradeNo: "").slot(of: 256))
        var counts = [Int](repeating: 0, count: 256)
        for index in 0..<25_600 { counts[MerchantKey(merchantID: "m\(index % 7)", outTradeNo: "t-\(index)").slot(of: 256)] += 1 }
        #expect(counts.min()! > 40 && counts.max()! < 180, "100 a slot on average: \(counts.min()!)...\(counts.max()!)")

        let table = try Self.table(Self.cells)
        let moved = try table.movingIndexSlots(0...7, to: Self.cells[3])
        #expect(moved.indexSlots.slots(of: Self.cells[3]) == Array(0...7) + Array(192...255))
        #expect(moved.indexSlots.slots(of: Self.cells[0]) == Array(8...63))
        #expect(moved.version == table.version + 1)
        #expect(try moved.rollingBack(to: table).indexSlots == moved.indexSlots)
        #expect(throws: RoutingTableError.self) { try table.movingIndexSlots(250...256, to: Self.cells[0]) }
        #expect(throws: RoutingTableError.self) { try table.movingIndexSlots(0...1, to: CellID(unchecked: 77)) }
    }

    @Test("a release that maps a slot to no cell, twice, or to a retired or unknown cell is refused")
    func invalidMaps() throws {
        let table = try Self.table(Self.cells)
        #expect(throws: RoutingTableError.self) {
            try table.updatingCell(Self.cells[1]) { $0.state = .retired }
        }
        #expect(throws: RoutingTableError.self) { try Self.table(Self.cells, slots: IndexSlots(cells: Array(repeating: Self.cells[0], count: 255))) }
        #expect(throws: RoutingTableError.self) {
            try Self.table(Self.cells, slots: IndexSlots(cells: Array(repeating: CellID(unchecked: 99), count: 256)))
        }
        for bad in [
            #"[{"first":0,"last":254,"cell":1}]"#, #"[{"first":0,"last":255,"cell":1},{"first":3,"last":3,"cell":2}]"#,
            #"[{"first":5,"last":2,"cell":1}]"#, #"[{"first":0,"last":256,"cell":1}]"#,
        ] {
            #expect(throws: DecodingError.self, "\(bad)") { try JSONDecoder().decode(IndexSlots.self, from: Data(bad.utf8)) }
        }
    }
}
