import CellRouting
import Logging
import OrderModel
import Synchronization

/// An operator's online move of merchant-key index slots to another cell
/// (docs/merchant-keys.md, "Moving slots"):
///
/// 1. **Freeze** the slots in each cell holding them now. The fence is in
///    the cell's storage, so it holds for every cell service and every
///    caller, whatever release they follow: writes of those entries are
///    refused (`index_unavailable`, which creates and pays treat as a slot
///    they cannot reach), reads go on.
/// 2. **Copy** their entries into the new cell, page by page, and thaw the
///    slots there.
/// 3. **Re-point**: publish the release that maps the slots to the new cell.
/// 4. **Drop** the entries left in the old cells (they stay frozen there).
///
/// A failure before the re-point thaws the old cells again and changes
/// nothing else; when it is not known whether the re-pointing release was
/// published, the slots stay frozen. Running the same move again resumes
/// it: every step is idempotent, and a move whose slots are all in their
/// new cell thaws them there and drops what old cells still keep. One
/// move at a time per control plane.
public final class IndexSlotMover: Sendable {
    private let control: ControlPlane
    private let cells: any IndexSlotCopying
    private let busy = Mutex(false)
    /// The slots of the move under way, from before their freeze until they are thawed in their new cell; and
    /// those a move left frozen because it could not tell whether its re-pointing release was published, until
    /// a later move of them finishes.
    private let slotsInMotion = Mutex<(underWay: Set<Int>, leftFrozen: Set<Int>)>(([], []))
    private let logger: Logger

    /// The slots a move is freezing, copying or re-pointing now (empty when none runs). The health
    /// checker keeps its probes off them: their writes are refused on purpose while they move, which
    /// says nothing of the cell's health.
    public var slotsBeingMoved: Set<Int> { slotsInMotion.withLock { $0.underWay.union($0.leftFrozen) } }

    public init(control: ControlPlane, cells: any IndexSlotCopying, logger: Logger) {
        self.control = control
        self.cells = cells
        self.logger = logger
    }

    public func move(
        _ slots: ClosedRange<Int>, to target: CellID, expectedVersion: UInt64?, author: String, reason: String
    ) async throws(OrderError) -> IndexSlotMoveView {
        guard busy.withLock({ busy in defer { busy = true }; return !busy }) else {
            throw OrderError(.versionConflict, "another index slot move is under way", retryAfterSeconds: 5)
        }
        defer { busy.withLock { $0 = false } }
        slotsInMotion.withLock { $0.underWay = Set(slots) }
        // Frozen when the move ends: left frozen, until a move of them finishes.
        var frozenAtEnd: Set<Int> = []
        defer {
            slotsInMotion.withLock { state in
                state.leftFrozen.subtract(Set(slots))
                state.leftFrozen.formUnion(frozenAtEnd)
                state.underWay = []
            }
        }

        let base = control.routingTable
        if let expectedVersion, expectedVersion != base.version {
            throw OrderError(.versionConflict, "the move was asked against version \(expectedVersion) but version \(base.version) is current")
        }
        do { _ = try base.movingIndexSlots(slots, to: target) } catch {
            switch error {
            case .unknownCell: throw OrderError(.notFound, error.description)
            default: throw OrderError.invalidRequest(error.description)
            }
        }
        guard let targetRoute = base.cells[target], targetRoute.state.servesExistingOrders else {
            throw OrderError.invalidRequest("cell \(target) is RETIRED: it cannot hold index slots")
        }
        // The slots to move, by the cell holding them now.
        var sources: [CellID: [Int]] = [:]
        for slot in slots where base.indexSlots.cells[slot] != target { sources[base.indexSlots.cells[slot], default: []].append(slot) }
        let moving = sources.values.flatMap { $0 }.sorted()
        var view = IndexSlotMoveView(first: slots.lowerBound, last: slots.upperBound, to: target, version: base.version)
        guard !moving.isEmpty else {
            // Every slot is in `to` already: finish what a move that stopped after its re-point left.
            let others = base.sortedCells.filter { $0.id != target }.map { ($0, Array(slots)) }
            try await finish(Array(slots), in: targetRoute, droppingFrom: others, into: &view)
            return view
        }
        view.from = sources.keys.sorted().map { Int($0.rawValue) }
        logger.notice("moving index slots", metadata: ["slots": "\(slots)", "to": "\(target)", "from": "\(view.from)", "author": "\(author)"])

        // 1-2. Freeze and copy; on failure, thaw what was frozen: nothing else has changed yet.
        var frozen: [(CellRoute, [Int])] = []
        do {
            for (source, own) in sources.sorted(by: { $0.key < $1.key }) {
                guard let route = base.cells[source] else { throw OrderError(.notFound, "cell \(source) holds index slots but is not in the routing table") }
                frozen.append((route, own))
                try await cells.setIndexSlots(own, frozen: true, in: route)
                view.copied += try await cells.copyIndexSlots(own, from: route, to: targetRoute)
            }
        } catch {
            await thaw(frozen)
            throw Self.refusal(error, "the copy of index slots \(slots) to cell \(target) failed; the old cells hold them again")
        }

        // 3. Re-point: only if no other release moved these slots meanwhile.
        let table: RoutingTable
        do {
            table = try await control.change(author: author, reason: "move index slots \(slots) to cell \(target): \(reason)") { current in
                for (source, own) in sources where own.contains(where: { current.indexSlots.cells[$0] != source }) {
                    throw OrderError(.versionConflict, "index slots \(slots) changed cells while they were copied; run the move again")
                }
                return try current.movingIndexSlots(slots, to: target)
            }
        } catch {
            let current = control.routingTable
            if moving.allSatisfy({ current.indexSlots.cells[$0] == target }) {
                // Published after all (the answer was lost, and the control plane found the release in its store).
                table = current
            } else if error.code == .versionConflict {
                // Refused before anything was published: thaw what the table in force still maps to the old cells.
                await thaw(frozen.map { route, own in (route, own.filter { current.indexSlots.cells[$0] == route.id }) })
                throw error
            } else {
                // The outcome is unknown: thawing could let the old cells take writes the new one never sees.
                frozenAtEnd = Set(moving)
                throw OrderError(
                    .controlPlaneUnavailable,
                    "the release moving index slots \(slots) to cell \(target) may or may not be published (\(error.detail)); "
                        + "the slots stay frozen in their old cells until the move is run again",
                    retryAfterSeconds: 5
                )
            }
        }
        view.version = table.version

        // 4-5. Thaw the slots in their new cell (frozen there if they were moved away from it before), drop the old copies.
        try await finish(moving, in: targetRoute, droppingFrom: frozen, into: &view)
        logger.notice("moved index slots", metadata: ["slots": "\(slots)", "to": "\(target)", "copied": "\(view.copied)", "version": "\(table.version)"])
        return view
    }

    /// The steps after the re-point: thaw `slots` in the cell that holds them
    /// now, and drop the entries of each old cell's slots there, where they
    /// are frozen (a cell where they are not refuses the scan, and keeps its entries).
    private func finish(
        _ slots: [Int], in target: CellRoute, droppingFrom others: [(CellRoute, [Int])], into view: inout IndexSlotMoveView
    ) async throws(OrderError) {
        do {
            try await cells.setIndexSlots(slots, frozen: false, in: target)
        } catch {
            throw Self.refusal(error, "the index slots are in cell \(target.id) by the routing, but it could not thaw them; run the move again")
        }
        for (route, own) in others where route.state.servesExistingOrders {
            do {
                view.dropped += try await cells.dropIndexSlots(own, in: route)
            } catch let refusal as OrderError where refusal.code == .invalidState {
                continue  // not frozen there: not a cell these slots were moved from
            } catch {
                logger.warning("could not drop moved index entries", metadata: ["cell": "\(route.id)", "error": "\(error)"])
                view.leftBehind.append(Int(route.id.rawValue))
            }
        }
    }

    private func thaw(_ frozen: [(CellRoute, [Int])]) async {
        for (route, own) in frozen {
            do { try await cells.setIndexSlots(own, frozen: false, in: route) } catch {
                logger.error(
                    "could not thaw index slots after a failed move: they stay frozen until the move is run again",
                    metadata: ["cell": "\(route.id)", "slots": "\(own)", "error": "\(error)"]
                )
            }
        }
    }

    private static func refusal(_ error: any Error, _ what: String) -> OrderError {
        if let error = error as? OrderError, error.code != .internalError {
            return OrderError(error.code, "\(what): \(error.detail)", retryAfterSeconds: error.retryAfterSeconds ?? 5)
        }
        return OrderError(.cellUnavailable, "\(what): \(error)", retryAfterSeconds: 5)
    }
}

/// The answer to a slot move.
public struct IndexSlotMoveView: Codable, Sendable, Equatable {
    public var first: Int
    public var last: Int
    public var to: CellID
    /// The cells the slots were moved from (none: they were in `to` already).
    public var from: [Int] = []
    /// Entries copied into `to`.
    public var copied = 0
    /// Entries deleted from the old cells.
    public var dropped = 0
    /// Old cells whose copies could not be deleted (harmless: frozen there, never read).
    public var leftBehind: [Int] = []
    /// The release that re-pointed the slots (the current one if nothing moved).
    public var version: UInt64

    enum CodingKeys: String, CodingKey { case first, last, to, from, copied, dropped, leftBehind = "left_behind", version }
}
