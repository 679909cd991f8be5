import CellRouting
import OrderModel
import Testing

/// ``MerchantKeyCreate`` during an index backfill: the search before the bind.
@Suite("A create's walk during an index backfill")
struct MerchantKeyCreateTests {
    static let key = MerchantKey(merchantID: "m1", outTradeNo: "old-1")
    static let cells = (1...3).map { CellID(unchecked: UInt16($0)) }

    func walk(policy: IndexSlotPolicy = .available) -> MerchantKeyCreate {
        let candidates = Self.cells.map { PlacementCandidate(cell: $0, weight: 100, recentLoad: 0) }
        return MerchantKeyCreate(
            key: Self.key, retry: OrderRetry(candidates: candidates, policy: OrderRetryPolicy(maximumAttempts: 3)), policy: policy, backfill: true
        )
    }

    @Test("no earlier order: the walk binds as without a backfill")
    func nothingFound() {
        var random = SplitMix64(seed: 1)
        var create = walk()
        #expect(create.start(using: &random) == .search)
        guard case .bind(let candidate) = create.searched(found: nil, using: &random) else {
            Issue.record("a bind after the search")
            return
        }
        #expect(create.indexAnswered(MerchantKeyBinding(owner: candidate, holder: nil, movableByCaller: true)) == .create(in: candidate, keyStatus: .reserved))
        // Its own reservation moves on when the cell fails, as ever.
        guard case .move(from: candidate, to: _) = create.createFailed("down", using: &random) else {
            Issue.record("a move")
            return
        }
    }

    @Test("an earlier order found: the key is bound to its cell and never moved from it")
    func earlierOrderFound() {
        var random = SplitMix64(seed: 2)
        var create = walk()
        _ = create.start(using: &random)
        let found = Self.cells[2]
        #expect(create.searched(found: found, using: &random) == .bind(candidate: found))
        #expect(create.indexAnswered(MerchantKeyBinding(owner: found, holder: nil, movableByCaller: true)) == .create(in: found, keyStatus: .reserved))
        guard case .fail(let error) = create.createFailed("down", using: &random) else {
            Issue.record("a refusal, not a move: the earlier order is in that cell")
            return
        }
        #expect(error.code == .cellUnavailable && error.retryAfterSeconds != nil)
    }

    @Test("an earlier order found and the slot unreachable: created unindexed in its cell only")
    func earlierOrderFoundSlotDown() {
        var random = SplitMix64(seed: 3)
        var create = walk()
        _ = create.start(using: &random)
        let found = Self.cells[1]
        _ = create.searched(found: found, using: &random)
        #expect(create.indexFailed("slot down") == .create(in: found, keyStatus: .unindexed))
        guard case .fail(let error) = create.createFailed("down", using: &random) else {
            Issue.record("a refusal, not another cell")
            return
        }
        #expect(error.code == .cellUnavailable)
    }

    @Test("a cell that cannot be searched: 503 index_unavailable, nothing bound")
    func searchFails() {
        var random = SplitMix64(seed: 4)
        var create = walk(policy: .strict)
        _ = create.start(using: &random)
        guard case .fail(let error) = create.searchFailed("cell 2 down") else {
            Issue.record("a refusal")
            return
        }
        #expect(error.code == .indexUnavailable && error.retryAfterSeconds == 5 && create.state == .finished)
    }
}
