import CellRouting
import OrderModel
import Testing

/// ``MerchantKeyCreate`` when order retry picks the cell holding the key's
/// index slot: bind and create in one call there, and what its failures lead to.
@Suite("A create's walk through its key's slot cell")
struct MerchantKeyBoundCreateTests {
    static let key = MerchantKey(merchantID: "m1", outTradeNo: "bound-1")
    static let cells = (1...3).map { CellID(unchecked: UInt16($0)) }
    static let slotCell = cells[1]

    func walk(policy: IndexSlotPolicy = .available) -> MerchantKeyCreate {
        let candidates = Self.cells.map { PlacementCandidate(cell: $0, weight: 100, recentLoad: 0) }
        return MerchantKeyCreate(
            key: Self.key, retry: OrderRetry(candidates: candidates, policy: OrderRetryPolicy(maximumAttempts: 3), preferring: Self.slotCell),
            policy: policy, slotCell: Self.slotCell
        )
    }

    /// A walk that has sent its bound create to the slot's cell.
    func started(policy: IndexSlotPolicy = .available, random: inout SplitMix64) -> MerchantKeyCreate {
        var create = walk(policy: policy)
        #expect(create.start(using: &random) == .createBound(in: Self.slotCell))
        return create
    }

    @Test("a key bound elsewhere: the create goes to its owner, and the slot's cell counts as answered")
    func boundElsewhere() {
        var random = SplitMix64(seed: 1)
        var create = started(random: &random)
        let owner = Self.cells[2]
        #expect(create.boundElsewhere(MerchantKeyBinding(owner: owner, holder: nil, movableByCaller: false)) == .create(in: owner, keyStatus: .reserved))
        #expect(create.retry.failedCells.isEmpty)
    }

    @Test("a failure that may have committed moves the create's own reservation on, at the slot's cell", arguments: IndexSlotPolicy.allCases)
    func mayHaveCreatedMoves(policy: IndexSlotPolicy) {
        var random = SplitMix64(seed: 2)
        var create = started(policy: policy, random: &random)
        guard case .move(from: Self.slotCell, to: let next) = create.boundFailed("deadline", .cellMayHaveCreated, using: &random) else {
            Issue.record("a move, under either policy: \(create.state)")
            return
        }
        #expect(next != Self.slotCell && create.retry.failedCells == [Self.slotCell])
        // The transaction did not commit: the key is reserved for the next cell now.
        #expect(create.indexAnswered(MerchantKeyBinding(owner: next, holder: nil, movableByCaller: true)) == .create(in: next, keyStatus: .reserved))
    }

    @Test("a failed bound create that committed after all: the move answers its order, and the create goes back to meet it")
    func committedAfterAll() throws {
        var random = SplitMix64(seed: 3)
        var create = started(random: &random)
        guard case .move = create.boundFailed("connection closed", .cellMayHaveCreated, using: &random) else {
            Issue.record("a move")
            return
        }
        let holder = try OrderID(cell: Self.slotCell, createdAt: Timestamp(millisecondsSinceEpoch: 1_800_000_000_000), sequence: 1)
        #expect(
            create.indexAnswered(MerchantKeyBinding(owner: Self.slotCell, holder: holder, movableByCaller: false))
                == .create(in: Self.slotCell, keyStatus: .reserved)
        )
        // Still failing there: the key's order is in that cell, so 503, never an order elsewhere.
        guard case .fail(let error) = create.createFailed("still down", using: &random) else {
            Issue.record("a refusal")
            return
        }
        #expect(error.code == .cellUnavailable && error.retryAfterSeconds != nil)
    }

    @Test("a failure that may have committed and a slot that cannot be reached for the move either: the policy decides, as for a bind")
    func moveFails() {
        var random = SplitMix64(seed: 4)
        var strict = started(policy: .strict, random: &random)
        _ = strict.boundFailed("deadline", .cellMayHaveCreated, using: &random)
        guard case .fail(let error) = strict.indexFailed("unreachable") else {
            Issue.record("`strict` refuses: \(strict.state)")
            return
        }
        #expect(error.code == .indexUnavailable && error.retryAfterSeconds != nil)

        var available = started(policy: .available, random: &random)
        guard case .move(_, to: let next) = available.boundFailed("deadline", .cellMayHaveCreated, using: &random) else {
            Issue.record("a move")
            return
        }
        // Unindexed in the cell the move proposed: a late move there reserves the key for that very order's cell.
        #expect(available.indexFailed("unreachable") == .create(in: next, keyStatus: .unindexed))
    }

    @Test("a call that never reached the cell: `available` creates unindexed in the next cell, `strict` refuses")
    func notReached() {
        var random = SplitMix64(seed: 5)
        var available = started(policy: .available, random: &random)
        guard case .create(in: let next, keyStatus: .unindexed) = available.boundFailed("refused", .cellNotReached, using: &random) else {
            Issue.record("an unindexed create")
            return
        }
        #expect(next != Self.slotCell)
        var strict = started(policy: .strict, random: &random)
        guard case .fail(let error) = strict.boundFailed("refused", .cellNotReached, using: &random) else {
            Issue.record("a refusal")
            return
        }
        #expect(error.code == .indexUnavailable)
    }

    @Test("a slot the cell cannot write now: `available` creates unindexed in that same cell")
    func slotRefused() {
        var random = SplitMix64(seed: 6)
        var create = started(random: &random)
        #expect(create.boundFailed("frozen", .slotRefused, using: &random) == .create(in: Self.slotCell, keyStatus: .unindexed))
        #expect(create.retry.failedCells.isEmpty)
    }
}
