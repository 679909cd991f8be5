import OrderModel

/// Which cell holds each slot of the merchant-key index.
///
/// A merchant key's entry lives in slot `key.slot(of: IndexSlots.count)`;
/// the routing table maps every slot to a cell. The count never changes,
/// and the map changes only when an operator moves a slot: adding a cell
/// moves no entry (docs/merchant-keys.md).
public struct IndexSlots: Sendable, Equatable {
    /// Slots of the index (``MerchantKey/indexSlotCount``).
    public static let count = MerchantKey.indexSlotCount

    /// The cell of each slot, by slot number; empty only in a table without cells.
    public private(set) var cells: [CellID]

    /// Slots dealt in equal runs over `cells` in id order (four cells: 0-63,
    /// 64-127, …): the map of a routing table that has none yet (its first
    /// release, or one written before the index existed). Runs keep the map
    /// short in a release and make a move of a range of slots natural.
    public static func dealt(over cells: [CellID]) -> IndexSlots {
        let sorted = cells.sorted()
        guard !sorted.isEmpty else { return IndexSlots(cells: []) }
        return IndexSlots(cells: (0..<count).map { sorted[$0 * sorted.count / count] })
    }

    public init(cells: [CellID]) {
        self.cells = cells
    }

    /// The cell holding the slot of `key`; nil in a table without cells.
    public func cell(for key: MerchantKey) -> CellID? {
        cells.isEmpty ? nil : cells[key.slot(of: Self.count)]
    }

    /// The slots a cell holds, in order.
    public func slots(of cell: CellID) -> [Int] {
        cells.indices.filter { cells[$0] == cell }
    }

    /// The map with `slots` held by `cell`.
    public func moving(_ slots: ClosedRange<Int>, to cell: CellID) -> IndexSlots {
        var next = self
        for slot in slots where next.cells.indices.contains(slot) { next.cells[slot] = cell }
        return next
    }
}

/// In JSON: runs of consecutive slots held by one cell,
/// `[{"first": 0, "last": 63, "cell": 1}, …]`, covering every slot once.
extension IndexSlots: Codable {
    struct Run: Codable, Equatable {
        var first: Int
        var last: Int
        var cell: CellID
    }

    public init(from decoder: any Decoder) throws {
        let runs = try decoder.singleValueContainer().decode([Run].self)
        var cells: [CellID?] = Array(repeating: nil, count: Self.count)
        for run in runs {
            guard run.first <= run.last, run.first >= 0, run.last < Self.count else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: decoder.codingPath, debugDescription: "index slot run \(run.first)...\(run.last) is outside 0...\(Self.count - 1)")
                )
            }
            for slot in run.first...run.last {
                guard cells[slot] == nil else {
                    throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "index slot \(slot) is mapped twice"))
                }
                cells[slot] = run.cell
            }
        }
        if runs.isEmpty {
            self.init(cells: [])
            return
        }
        guard let missing = cells.firstIndex(where: { $0 == nil }) else {
            self.init(cells: cells.compactMap { $0 })
            return
        }
        throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "index slot \(missing) is mapped to no cell"))
    }

    public func encode(to encoder: any Encoder) throws {
        var runs: [Run] = []
        for (slot, cell) in cells.enumerated() {
            if let last = runs.last, last.cell == cell, last.last == slot - 1 {
                runs[runs.count - 1].last = slot
            } else {
                runs.append(Run(first: slot, last: slot, cell: cell))
            }
        }
        var container = encoder.singleValueContainer()
        try container.encode(runs)
    }
}

/// What a slot move asks of the cells (docs/merchant-keys.md, "Moving
/// slots"): the control plane decides the steps and publishes the
/// re-pointed map; a process that can call cells does the calls.
public protocol IndexSlotCopying: Sendable {
    /// Freezes (or thaws) `slots` in `cell`'s storage. Once a freeze
    /// returns, no entry of those slots changes there any more.
    func setIndexSlots(_ slots: [Int], frozen: Bool, in cell: CellRoute) async throws
    /// Copies every entry of `slots`, frozen in `source`, into `target`,
    /// replacing what `target` has of them; returns how many it copied.
    func copyIndexSlots(_ slots: [Int], from source: CellRoute, to target: CellRoute) async throws -> Int
    /// Deletes the entries of `slots` (frozen) that a move left in `cell`; returns how many.
    func dropIndexSlots(_ slots: [Int], in cell: CellRoute) async throws -> Int
}
