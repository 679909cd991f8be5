import OrderModel

/// A cell that may take a new order, with its placement weight.
public struct PlacementCandidate: Sendable, Equatable {
    public var cell: CellID
    /// Operator weight (0...1000) from the routing table.
    public var weight: Int
    /// Requests the cell received in the last completed load window.
    public var recentLoad: Int

    public init(cell: CellID, weight: Int, recentLoad: Int) {
        self.cell = cell
        self.weight = weight
        self.recentLoad = recentLoad
    }
}

/// Chooses the cell for a new order: at random, weighted by operator weight
/// and against recent load (hotspot balancing).
///
/// A cell's share is `weight / (recentLoad + smoothing)` with the smoothing
/// equal to the mean recent load (at least 1): equal loads give shares
/// proportional to weights, and a cell with twice the mean load gets about
/// two thirds of its share. Pure; the random source is a parameter.
public enum CellSelector {
    public static func choose<R: RandomNumberGenerator>(
        from candidates: [PlacementCandidate], using random: inout R
    ) -> CellID? {
        switch candidates.count {
        case 0: return nil
        case 1: return candidates[0].weight > 0 ? candidates[0].cell : nil
        default: break
        }
        var totalLoad = 0
        for candidate in candidates { totalLoad += candidate.recentLoad }
        let smoothing = max(1.0, Double(totalLoad) / Double(candidates.count))
        var total = 0.0
        for candidate in candidates { total += share(candidate, smoothing) }
        guard total > 0 else { return nil }
        var point = Double.random(in: 0..<total, using: &random)
        for candidate in candidates {
            let share = share(candidate, smoothing)
            if point < share { return candidate.cell }
            point -= share
        }
        // Rounding left the point past the end: take the last cell with a share.
        return candidates.last(where: { $0.weight > 0 })?.cell
    }

    /// Whether `cell` may be chosen ahead of the weighted draw: it is a
    /// candidate with a weight, and its share is at least three quarters of
    /// the mean share. With equal weights every candidate qualifies, through
    /// the ups and downs of recent load; a drained cell does not, nor one with
    /// less than three quarters of the mean weight,
    /// nor one with about two thirds more load than the mean (a hotspot), and
    /// the draw decides.
    public static func qualifies(_ cell: CellID, among candidates: [PlacementCandidate]) -> Bool {
        guard let candidate = candidates.first(where: { $0.cell == cell }), candidate.weight > 0 else { return false }
        var totalLoad = 0
        for candidate in candidates { totalLoad += candidate.recentLoad }
        let smoothing = max(1.0, Double(totalLoad) / Double(candidates.count))
        var total = 0.0
        for other in candidates { total += share(other, smoothing) }
        return share(candidate, smoothing) * Double(candidates.count) >= total * 0.75
    }

    @inline(__always)
    static func share(_ candidate: PlacementCandidate, _ smoothing: Double) -> Double {
        Double(candidate.weight) / (Double(candidate.recentLoad) + smoothing)
    }
}
