import OrderModel

/// How many cells one create may try.
public struct OrderRetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included (default 3).
    public var maximumAttempts: Int

    public init(maximumAttempts: Int = 3) {
        precondition(maximumAttempts >= 1, "a create needs at least one attempt")
        self.maximumAttempts = maximumAttempts
    }
}

/// Order retry for one create: pick a cell, and on failure exclude it and
/// pick again among the rest, until a cell succeeds or the attempts run out.
///
/// A state machine as a value type; the proxy drives it and does the I/O.
public struct OrderRetry: Sendable {
    /// Where one create's retry stands.
    public enum State: Sendable, Equatable {
        /// Ready to choose the next cell.
        case choosing
        /// A call to this cell is under way.
        case attempting(CellID)
        /// A cell took the order.
        case placed(CellID)
        /// No cell took it: the attempts ran out, or no candidate was left.
        case exhausted
    }

    public private(set) var state: State = .choosing
    public private(set) var attempts = 0
    public private(set) var failedCells: [CellID] = []
    private var candidates: [PlacementCandidate]
    private let policy: OrderRetryPolicy
    /// Tried first when it qualifies (``CellSelector/qualifies(_:among:)``); then the weighted draw.
    private var preferred: CellID?

    /// - Parameter preferring: a cell to try first if it qualifies: the
    ///   cell holding the key's index slot, where a create is one
    ///   transaction instead of two (docs/merchant-keys.md).
    public init(candidates: [PlacementCandidate], policy: OrderRetryPolicy, preferring: CellID? = nil) {
        self.candidates = candidates
        self.policy = policy
        self.preferred = preferring
    }

    /// The next cell to try, or `nil` when the create is exhausted.
    public mutating func nextCell<R: RandomNumberGenerator>(using random: inout R) -> CellID? {
        guard case .choosing = state else {
            preconditionFailure("nextCell called in state \(state)")
        }
        let first = preferred.flatMap { CellSelector.qualifies($0, among: candidates) ? $0 : nil }
        preferred = nil
        guard attempts < policy.maximumAttempts, let cell = first ?? CellSelector.choose(from: candidates, using: &random) else {
            state = .exhausted
            return nil
        }
        attempts += 1
        state = .attempting(cell)
        return cell
    }

    /// The attempt in flight failed: exclude its cell from the rest of this create.
    public mutating func attemptFailed() {
        guard case .attempting(let cell) = state else { preconditionFailure("attemptFailed in state \(state)") }
        failedCells.append(cell)
        candidates.removeAll { $0.cell == cell }
        state = .choosing
    }

    /// The attempt in flight succeeded.
    public mutating func attemptSucceeded() {
        guard case .attempting(let cell) = state else { preconditionFailure("attemptSucceeded in state \(state)") }
        state = .placed(cell)
    }
}
