import OrderModel

/// One create's walk through the merchant-key protocol
/// (docs/merchant-keys.md), as a value type: the proxy feeds it what each
/// call answered and does the I/O it asks for.
///
/// 1. **Bind** the key at its index slot's cell, proposing a cell chosen by
///    order retry. A new key is reserved for that cell; a known key answers
///    its owner, and the create goes there instead — whatever cell the
///    routing would choose now (drained, sealed, blacklisted: the order is
///    or will be there).
/// 2. **Create** in the owner; cells keep the key unique among their own
///    orders, so a repeat meets the first order there.
/// 3. When the owner fails: a create that made the reservation itself
///    **moves** it to the next cell of its order retry (the index records
///    the cell left behind, whose order, if the failed attempt committed
///    after all, can never be paid and is closed by the reconciler); any
///    other create answers `503`: the key's order may be in that cell.
///
/// When the slot cannot be reached at the first bind, the partition's
/// ``IndexSlotPolicy`` decides: `strict` refuses, `available` creates the
/// order unindexed (unpayable until the reconciler claims its key).
///
/// When the cell order retry picks first is the one holding the key's index
/// slot (order retry prefers it: ``OrderRetry/init(candidates:policy:preferring:)``),
/// bind and create are **one call and one transaction** there
/// (``Action/createBound(in:)``): the new order holds its key at once. A key
/// bound elsewhere sends the create to its owner; a failure that may have
/// committed moves the create's reservation on, as a failed owner does,
/// and one that made nothing is a slot that cannot be reached, as above.
///
/// During an index **backfill** (orders made before the index have no
/// entries yet) the walk first **searches** every cell for the key's order:
/// found, the key is bound to that cell, and never moved from it; not
/// found, the walk goes on as above; a cell that cannot be searched makes
/// the create answer `503`, since its order could be there.
public struct MerchantKeyCreate: Sendable {
    /// What the proxy does next.
    public enum Action: Sendable, Equatable {
        /// Look for the key's order in every cell (index backfill).
        case search
        /// Ask the slot's cell where the key goes, proposing `candidate`.
        case bind(candidate: CellID)
        /// Move this create's own reservation from its failed owner.
        case move(from: CellID, to: CellID)
        /// Create the order in `cell` with this key status.
        case create(in: CellID, keyStatus: MerchantKeyStatus)
        /// Bind the key and create the order in `cell`, which holds the key's slot, in one transaction.
        case createBound(in: CellID)
        /// Answer the caller with this refusal.
        case fail(OrderError)
    }

    /// Where the create stands.
    public enum State: Sendable, Equatable {
        case idle
        case searching
        /// `adopting`: the candidate is the cell where the key's order was found.
        case binding(candidate: CellID, adopting: Bool)
        case moving(from: CellID, to: CellID)
        /// Moving the reservation on after a create in the slot's own cell
        /// failed in a way that may have committed: `from` is that cell.
        case movingOffSlotCell(from: CellID, to: CellID)
        /// Binding and creating in the cell of the key's slot, in one call.
        case creatingBound(CellID)
        /// Creating in the key's owner; `movable`: this create's own reservation.
        case creating(CellID, movable: Bool)
        /// Creating without the index (its slot could not be reached at the bind);
        /// `movable`: on to another cell if this one fails (not when the key's earlier order was found here).
        case creatingUnindexed(CellID, movable: Bool)
        case finished
    }

    public private(set) var state: State = .idle
    public private(set) var retry: OrderRetry
    public let key: MerchantKey
    public let policy: IndexSlotPolicy
    /// Orders made before the index may lack entries: search before binding.
    public let backfill: Bool
    /// The cell holding the key's index slot: a create placed there binds in the same call.
    public let slotCell: CellID?

    public init(key: MerchantKey, retry: OrderRetry, policy: IndexSlotPolicy, backfill: Bool = false, slotCell: CellID? = nil) {
        self.key = key
        self.retry = retry
        self.policy = policy
        self.backfill = backfill
        self.slotCell = slotCell
    }

    /// The first action: bind, proposing the order retry's first cell (during a backfill: search first).
    public mutating func start<R: RandomNumberGenerator>(using random: inout R) -> Action {
        precondition(state == .idle, "start called in state \(state)")
        if backfill {
            state = .searching
            return .search
        }
        return bindNext(using: &random)
    }

    /// Every cell answered the search: `found` holds the key's order (nil: none does).
    public mutating func searched<R: RandomNumberGenerator>(found: CellID?, using random: inout R) -> Action {
        precondition(state == .searching, "searched called in state \(state)")
        guard let found else { return bindNext(using: &random) }
        state = .binding(candidate: found, adopting: true)
        return .bind(candidate: found)
    }

    /// Some cell could not be searched: the key's order may be there.
    public mutating func searchFailed(_ detail: String) -> Action {
        precondition(state == .searching, "searchFailed called in state \(state)")
        return finish(
            OrderError(
                .indexUnavailable,
                "orders made before the merchant-key index are still being indexed, and a cell that may hold out_trade_no \(key.outTradeNo) cannot be searched: \(detail)",
                retryAfterSeconds: 5
            )
        )
    }

    private mutating func bindNext<R: RandomNumberGenerator>(using random: inout R) -> Action {
        guard let candidate = retry.nextCell(using: &random) else { return finish(noCell()) }
        if candidate == slotCell {
            state = .creatingBound(candidate)
            return .createBound(in: candidate)
        }
        state = .binding(candidate: candidate, adopting: false)
        return .bind(candidate: candidate)
    }

    /// The slot's cell answered that the key is bound to another cell: the create goes there.
    public mutating func boundElsewhere(_ binding: MerchantKeyBinding) -> Action {
        guard case .creatingBound = state else { preconditionFailure("boundElsewhere in state \(state)") }
        // The cell answered: it took no order, and it is no failed attempt.
        retry.attemptSucceeded()
        state = .creating(binding.owner, movable: false)
        return .create(in: binding.owner, keyStatus: .reserved)
    }

    /// How a bound create failed.
    public enum BoundCreateFailure: Sendable, Equatable {
        /// The cell answered that it cannot write the key's slot now (being
        /// moved, or not its own by the release it follows): it made nothing.
        case slotRefused
        /// The call never reached the cell, or the cell refused it before
        /// starting (``CellCallFailure``): it made nothing.
        case cellNotReached
        /// The cell failed, or its answer was lost or late: its transaction
        /// may have committed, and then its order holds the key.
        case cellMayHaveCreated
    }

    /// The bound create failed.
    ///
    /// When it may have committed, the walk does what a create that failed
    /// in its owner does: it **moves** its own reservation on, at the slot's
    /// cell — the very cell that failed. If the transaction committed, its
    /// order holds the key, the move answers that, and the create goes back
    /// to meet that order (or answers `503` while the cell cannot answer).
    /// If it did not, the key is reserved for the next cell, and the
    /// transaction, should it run late, finds the key bound elsewhere and
    /// makes no order. So the caller is not handed a rival of the key's
    /// order while the slot's cell answers. A move that cannot reach it
    /// either leaves the partition's policy to decide, as for a bind:
    /// `available` creates unindexed in the next cell (a rival, never
    /// payable, should the first transaction have committed), `strict`
    /// answers `503`.
    ///
    /// When it made nothing, the index cannot be reached: the partition's
    /// policy decides, as for a bind — `available` creates the order
    /// unindexed, in the same cell when only the slot refused, else in the
    /// next cell of the order retry.
    public mutating func boundFailed<R: RandomNumberGenerator>(_ detail: String, _ failure: BoundCreateFailure, using random: inout R) -> Action {
        guard case .creatingBound(let cell) = state else { preconditionFailure("boundFailed in state \(state)") }
        if failure == .cellMayHaveCreated {
            retry.attemptFailed()
            guard let next = retry.nextCell(using: &random) else { return finish(exhausted(detail)) }
            state = .movingOffSlotCell(from: cell, to: next)
            return .move(from: cell, to: next)
        }
        guard policy == .available else {
            return finish(
                OrderError(.indexUnavailable, "the merchant-key index cannot be reached for out_trade_no \(key.outTradeNo): \(detail)", retryAfterSeconds: 5)
            )
        }
        guard failure == .cellNotReached else {
            state = .creatingUnindexed(cell, movable: true)
            return .create(in: cell, keyStatus: .unindexed)
        }
        retry.attemptFailed()
        guard let next = retry.nextCell(using: &random) else { return finish(exhausted(detail)) }
        state = .creatingUnindexed(next, movable: true)
        return .create(in: next, keyStatus: .unindexed)
    }

    /// The slot's cell answered a bind or a move.
    public mutating func indexAnswered(_ binding: MerchantKeyBinding) -> Action {
        switch state {
        case .binding(_, let adopting):
            // A key bound to the cell of its earlier order never moves: that order is there.
            state = .creating(binding.owner, movable: binding.movableByCaller && !adopting)
            return .create(in: binding.owner, keyStatus: .reserved)
        case .moving, .movingOffSlotCell:
            state = .creating(binding.owner, movable: binding.movableByCaller)
            return .create(in: binding.owner, keyStatus: .reserved)
        default:
            preconditionFailure("indexAnswered in state \(state)")
        }
    }

    /// The slot's cell could not be reached (or failed) for a bind or a move.
    public mutating func indexFailed(_ detail: String) -> Action {
        switch state {
        case .binding(let candidate, let adopting):
            guard policy == .available else {
                return finish(OrderError(.indexUnavailable, "the merchant-key index cannot be reached for out_trade_no \(key.outTradeNo): \(detail)", retryAfterSeconds: 5))
            }
            state = .creatingUnindexed(candidate, movable: !adopting)
            return .create(in: candidate, keyStatus: .unindexed)
        case .moving(let from, _):
            // An earlier attempt in `from` may have committed: without the index nothing can tell.
            return finish(
                OrderError(
                    .indexUnavailable,
                    "the order for out_trade_no \(key.outTradeNo) may be in cell \(from), which failed, and the merchant-key index cannot be reached: \(detail)",
                    retryAfterSeconds: 5
                )
            )
        case .movingOffSlotCell(let slotCell, let next):
            // The slot's cell failed the create and now the move: it is what cannot be reached. Its create may
            // have committed; if so, that order holds the key and an unindexed one can never be paid. The
            // partition's policy decides, as for a bind that cannot reach the slot.
            guard policy == .available else {
                return finish(
                    OrderError(
                        .indexUnavailable,
                        "the order for out_trade_no \(key.outTradeNo) may be in cell \(slotCell), which holds its merchant-key index slot and cannot be reached: \(detail)",
                        retryAfterSeconds: 5
                    )
                )
            }
            state = .creatingUnindexed(next, movable: true)
            return .create(in: next, keyStatus: .unindexed)
        default:
            preconditionFailure("indexFailed in state \(state)")
        }
    }

    /// The create in the cell answered (created, replayed or refused): the create is over.
    public mutating func created() {
        switch state {
        case .creating, .creatingUnindexed, .creatingBound:
            if case .attempting = retry.state { retry.attemptSucceeded() }
            state = .finished
        default:
            preconditionFailure("created in state \(state)")
        }
    }

    /// The create in the cell failed (unreachable, timed out, the cell failed).
    public mutating func createFailed<R: RandomNumberGenerator>(_ detail: String, using random: inout R) -> Action {
        switch state {
        case .creating(let owner, let movable):
            guard movable, case .attempting(owner) = retry.state else {
                return finish(
                    OrderError(
                        .cellUnavailable,
                        "out_trade_no \(key.outTradeNo) is bound to cell \(owner), which cannot answer now: \(detail)",
                        retryAfterSeconds: 5
                    )
                )
            }
            retry.attemptFailed()
            guard let next = retry.nextCell(using: &random) else { return finish(exhausted(detail)) }
            state = .moving(from: owner, to: next)
            return .move(from: owner, to: next)
        case .creatingUnindexed(let cell, let movable):
            guard movable else {
                return finish(
                    OrderError(
                        .cellUnavailable, "the order for out_trade_no \(key.outTradeNo) is in cell \(cell), which cannot answer now: \(detail)",
                        retryAfterSeconds: 5
                    )
                )
            }
            retry.attemptFailed()
            guard let next = retry.nextCell(using: &random) else { return finish(exhausted(detail)) }
            state = .creatingUnindexed(next, movable: true)
            return .create(in: next, keyStatus: .unindexed)
        default:
            preconditionFailure("createFailed in state \(state)")
        }
    }

    private mutating func finish(_ error: OrderError) -> Action {
        state = .finished
        return .fail(error)
    }

    private func noCell() -> OrderError {
        OrderError(.noCellAvailable, "no cell can take new orders")
    }

    private func exhausted(_ detail: String) -> OrderError {
        let tried = retry.failedCells.map(\.description).joined(separator: ", ")
        return OrderError(.noCellAvailable, "no cell took the order after \(retry.attempts) attempt(s) (tried cells \(tried)): \(detail)")
    }
}
