import CellRouting
import OrderModel

/// What one proxy has observed of the cells: recent load per cell (for
/// hotspot balancing) and passive outlier detection. Guarded by a mutex
/// in ``OrderProxy``; every method is a short, non-blocking update.
struct PlacementState: Sendable {
    var load: CellLoadTracker
    var outliers: OutlierDetector

    init(loadWindowMilliseconds: Int64, outlierPolicy: OutlierPolicy, now: Timestamp) {
        load = CellLoadTracker(windowMilliseconds: loadWindowMilliseconds, now: now)
        outliers = OutlierDetector(policy: outlierPolicy)
    }

    /// The placement candidates among `cells`: ejected cells are left out,
    /// unless every cell is ejected (then the proxy's own view is more
    /// likely wrong than every cell down, and all are tried).
    mutating func candidates(from cells: [CellRoute], at now: Timestamp) -> [PlacementCandidate] {
        var result: [PlacementCandidate] = []
        result.reserveCapacity(cells.count)
        for cell in cells where !outliers.isEjected(cell.id, at: now) {
            result.append(PlacementCandidate(cell: cell.id, weight: cell.weight, recentLoad: load.recentLoad(of: cell.id, at: now)))
        }
        if result.isEmpty {
            for cell in cells {
                result.append(PlacementCandidate(cell: cell.id, weight: cell.weight, recentLoad: load.recentLoad(of: cell.id, at: now)))
            }
        }
        return result
    }

    mutating func succeeded(_ cell: CellID, at now: Timestamp) {
        load.record(cell, at: now)
        outliers.recordSuccess(cell)
    }

    mutating func failed(_ cell: CellID, at now: Timestamp) -> Bool {
        load.record(cell, at: now)
        return outliers.recordFailure(cell, at: now)
    }
}
