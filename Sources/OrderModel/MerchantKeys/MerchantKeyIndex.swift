/// A merchant key's entry in its index slot.
///
/// The entry binds the key to one cell, its **owner**: the only cell whose
/// order for the key may ever hold it. Cells keep `(merchant_id,
/// out_trade_no)` unique among their own orders, so "the owner's order for
/// the key" is at most one order, and the index never needs an order id
/// before the order exists. The first pay (or the reconciler) **claims**
/// the key for that order; a claimed key never moves again.
public struct MerchantKeyEntry: Sendable, Equatable {
    public var key: MerchantKey
    /// The cell where the key's order is, or is to be, created.
    public var owner: CellID
    /// The order that holds the key, once claimed; nil while the key is only reserved.
    public var holder: OrderID?
    /// The create call that reserved the key or moved it last: only that
    /// call may move it again (its own attempt at the owner failed).
    public var attempt: UInt64
    /// Cells the key was moved away from whose orders for it, if any, are
    /// rivals the reconciler has not closed yet.
    public var abandoned: [CellID]
    /// Bumped by every change; the reconciler's writes are conditional on it.
    public var revision: Int
    public var createdAt: Timestamp
    public var updatedAt: Timestamp

    public init(
        key: MerchantKey, owner: CellID, holder: OrderID? = nil, attempt: UInt64, abandoned: [CellID] = [], revision: Int = 1,
        createdAt: Timestamp, updatedAt: Timestamp? = nil
    ) {
        self.key = key
        self.owner = owner
        self.holder = holder
        self.attempt = attempt
        self.abandoned = abandoned
        self.revision = revision
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
    }
}

/// What a create learns from the index about its key.
public struct MerchantKeyBinding: Sendable, Equatable {
    /// Where the create must go: the key's order is, or is to be, there.
    public var owner: CellID
    /// The order holding the key, when it was claimed.
    public var holder: OrderID?
    /// Whether the asking create call made (or last moved) this binding and
    /// nobody claimed it since: only then may it move the key to another
    /// cell when its own attempt at the owner fails.
    public var movableByCaller: Bool

    public init(owner: CellID, holder: OrderID?, movableByCaller: Bool) {
        self.owner = owner
        self.holder = holder
        self.movableByCaller = movableByCaller
    }
}

/// What a claim of a key for an order found.
public enum MerchantKeyClaim: Sendable, Equatable {
    /// The order holds the key (now, or since an earlier claim).
    case holds
    /// Another order holds the key.
    case heldBy(OrderID)
    /// The key is reserved for a create in another cell; this order is a rival.
    case reservedFor(CellID)
}

/// The merchant-key index's decisions, pure: a store reads a key's entry
/// inside a transaction, asks for the decision and writes the entry it
/// returns (if any) in that same transaction (docs/merchant-keys.md).
public enum MerchantKeyIndex {
    /// Of the orders of one key that a release without the index made (an
    /// index backfill), the one that keeps the key: a paid one — the earlier
    /// release let it be paid, and its payment stands — else the earliest.
    public static func earlierOrderToKeep(_ orders: [Order]) -> Order? {
        orders.min { ($0.paidAt == nil ? 1 : 0, $0.createdAt, $0.id.description) < ($1.paidAt == nil ? 1 : 0, $1.createdAt, $1.id.description) }
    }

    /// A decision: what to answer, and the entry to write (nil: nothing changes).
    public struct Decision<Answer: Sendable>: Sendable {
        public var answer: Answer
        public var write: MerchantKeyEntry?

        public init(answer: Answer, write: MerchantKeyEntry?) {
            self.answer = answer
            self.write = write
        }
    }

    /// A create asks where its key's order goes, proposing `candidate`.
    ///
    /// A key nobody reserved is reserved for the candidate; a reserved or
    /// claimed key answers its owner, and the create goes there instead.
    public static func bind(
        _ entry: MerchantKeyEntry?, key: MerchantKey, candidate: CellID, attempt: UInt64, now: Timestamp
    ) -> Decision<MerchantKeyBinding> {
        guard let entry else {
            let reserved = MerchantKeyEntry(key: key, owner: candidate, attempt: attempt, createdAt: now)
            return Decision(answer: MerchantKeyBinding(owner: candidate, holder: nil, movableByCaller: true), write: reserved)
        }
        return Decision(answer: binding(of: entry, for: attempt), write: nil)
    }

    /// The create call `attempt` found its owner `from` failing and proposes
    /// `to`. Only the call that holds the reservation may move it, and only
    /// while nobody has claimed it; any other finds where the key is now.
    public static func move(
        _ entry: MerchantKeyEntry?, key: MerchantKey, from: CellID, to: CellID, attempt: UInt64, now: Timestamp
    ) -> Decision<MerchantKeyBinding> {
        guard var entry else {
            // The reservation is gone (never written, or an orphan cleaned up): reserve afresh, and
            // remember the failed cell — this call's attempt there may have committed after all.
            var reserved = MerchantKeyEntry(key: key, owner: to, attempt: attempt, abandoned: from == to ? [] : [from], createdAt: now)
            reserved.updatedAt = now
            return Decision(answer: MerchantKeyBinding(owner: to, holder: nil, movableByCaller: true), write: reserved)
        }
        guard entry.holder == nil, entry.owner == from, entry.attempt == attempt, from != to else {
            return Decision(answer: binding(of: entry, for: attempt), write: nil)
        }
        if !entry.abandoned.contains(from) { entry.abandoned.append(from) }
        entry.abandoned.removeAll { $0 == to }
        entry.owner = to
        entry.revision += 1
        entry.updatedAt = now
        return Decision(answer: MerchantKeyBinding(owner: to, holder: nil, movableByCaller: true), write: entry)
    }

    /// The order `order` of cell `cell` claims its key (before its first
    /// pay, or by the reconciler). It wins when it already holds the key,
    /// when its cell owns the reservation, or when nobody reserved the key
    /// (an order created while its slot was unreachable); a claimed key
    /// never changes holder.
    public static func claim(
        _ entry: MerchantKeyEntry?, key: MerchantKey, cell: CellID, order: OrderID, now: Timestamp
    ) -> Decision<MerchantKeyClaim> {
        guard var entry else {
            let held = MerchantKeyEntry(key: key, owner: cell, holder: order, attempt: 0, createdAt: now)
            return Decision(answer: .holds, write: held)
        }
        if let holder = entry.holder {
            return Decision(answer: holder == order ? .holds : .heldBy(holder), write: nil)
        }
        guard entry.owner == cell else { return Decision(answer: .reservedFor(entry.owner), write: nil) }
        entry.holder = order
        entry.abandoned.removeAll { $0 == cell }
        entry.revision += 1
        entry.updatedAt = now
        return Decision(answer: .holds, write: entry)
    }

    /// The reconciler settles a key that was moved, from what it found in
    /// the cells: `ownerOrder` in the owner, `abandonedOrders` in the cells
    /// the key was moved away from. Returns the entry to write (claimed by
    /// the owner's order; or, when the owner has none, moved back to the
    /// earliest abandoned order and claimed for it; or left reserved when no
    /// cell has an order) and the rivals to close as duplicates.
    ///
    /// The caller writes the entry only if its revision is still
    /// `entry.revision` (nothing moved or claimed it meanwhile).
    public static func settle(
        _ entry: MerchantKeyEntry, ownerOrder: OrderID?, abandonedOrders: [OrderID], now: Timestamp
    ) -> (write: MerchantKeyEntry, rivals: [OrderID]) {
        var settled = entry
        if settled.holder == nil {
            if let ownerOrder {
                settled.holder = ownerOrder
            } else if let earliest = abandonedOrders.min(by: { ($0.createdAt, $0.cell) < ($1.createdAt, $1.cell) }) {
                settled.owner = earliest.cell
                settled.holder = earliest
            }
        }
        let holder = settled.holder
        settled.abandoned = []
        settled.revision += 1
        settled.updatedAt = now
        let rivals = (abandonedOrders + [ownerOrder].compactMap { $0 }).filter { $0 != holder }
        return (settled, holder == nil ? [] : rivals)
    }

    private static func binding(of entry: MerchantKeyEntry, for attempt: UInt64) -> MerchantKeyBinding {
        MerchantKeyBinding(owner: entry.owner, holder: entry.holder, movableByCaller: entry.holder == nil && entry.attempt == attempt)
    }
}

/// One page of a slot move's copy: entries of the moving slots in key
/// order, and where the next page starts (nil: the scan is done). A page
/// may hold fewer entries than asked, even none, and still have a next
/// page: the scan goes over every key of the cell and keeps those of the
/// moving slots.
public struct MerchantKeyPage: Sendable, Equatable {
    public var entries: [MerchantKeyEntry]
    public var next: MerchantKey?

    public init(entries: [MerchantKeyEntry], next: MerchantKey?) {
        self.entries = entries
        self.next = next
    }
}

extension OrderError {
    /// An index write refused because the key's slot is frozen for a move
    /// (docs/merchant-keys.md, "Moving slots"): callers treat it as a slot
    /// they cannot reach, and the slot answers again from its new cell.
    public static func indexSlotFrozen(_ slot: Int) -> OrderError {
        OrderError(.indexUnavailable, "index slot \(slot) is being moved to another cell", retryAfterSeconds: 1)
    }
}

/// Where a list of a cell's orders, oldest first, goes on: after this
/// order (orders are listed by creation time, then id). The reconciler
/// keeps one per cell, so that orders that must wait do not hold back the
/// pages after them.
public struct OrderListPosition: Sendable, Equatable {
    public var createdAt: Timestamp
    public var id: OrderID

    public init(after order: Order) {
        createdAt = order.createdAt
        id = order.id
    }

    public init(createdAt: Timestamp, id: OrderID) {
        self.createdAt = createdAt
        self.id = id
    }
}

/// A create sent to the cell that holds its key's index slot, which binds
/// the key and creates the order in one transaction: the order, or where
/// the key is bound when that is another cell.
public enum BoundCreateResult: Sendable, Equatable {
    case order(CreateOrderResult)
    case boundElsewhere(MerchantKeyBinding)
}

extension MerchantKeyIndex {
    /// What a create in the cell holding its key's slot does (one
    /// transaction: the bind, the order, the claim).
    public enum BoundCreate: Sendable, Equatable {
        /// The key is bound to another cell: the create goes there.
        case elsewhere(MerchantKeyBinding)
        /// The key's order is, or is to be, in this cell. `claim`: the entry
        /// to write if the order is inserted now (it holds the key at once);
        /// nil when another order of this cell holds it already (the insert
        /// meets that one).
        case here(claim: MerchantKeyEntry?)
    }

    /// The bind of a create in the slot's own cell, `cell`, for the order
    /// `order` it is about to insert: a new key, or one reserved for this
    /// cell and not yet claimed, is claimed by that order in the same
    /// transaction; a key bound elsewhere sends the create there.
    public static func boundCreate(
        _ entry: MerchantKeyEntry?, key: MerchantKey, cell: CellID, order: OrderID, attempt: UInt64, now: Timestamp
    ) -> BoundCreate {
        guard let entry else {
            return .here(claim: MerchantKeyEntry(key: key, owner: cell, holder: order, attempt: attempt, createdAt: now))
        }
        guard entry.owner == cell else { return .elsewhere(binding(of: entry, for: attempt)) }
        guard entry.holder == nil else { return .here(claim: nil) }
        return .here(claim: claim(entry, key: key, cell: cell, order: order, now: now).write)
    }
}
