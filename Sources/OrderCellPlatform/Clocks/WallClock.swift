import Foundation
import OrderModel

/// The wall clock in whole milliseconds: what production processes pass
/// where the code takes a clock (tests pass one they control).
@Sendable
public func wallClock() -> Timestamp {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Timestamp(millisecondsSinceEpoch: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
}
