import Foundation
import Histogram

/// Latencies (in microseconds) and error counts of one kind of operation.
struct OperationStats: Sendable {
    var latencies = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
    var errors: [String: Int] = [:]

    mutating func record(microseconds: UInt64) { _ = latencies.record(max(1, microseconds)) }

    mutating func merge(_ other: OperationStats) {
        latencies.add(other.latencies)
        for (code, count) in other.errors { errors[code, default: 0] += count }
    }

    var count: UInt64 { latencies.totalCount }
    var errorCount: Int { errors.values.reduce(0, +) }
}

/// What one run measured, per operation.
public struct BenchReport: Sendable {
    public var name: String
    public var seconds: Double
    var operations: [String: OperationStats]

    var total: OperationStats {
        var total = OperationStats()
        for stats in operations.values { total.merge(stats) }
        return total
    }

    /// Whether the run recorded `operation` at all, successes or errors.
    public func recorded(_ operation: String) -> Bool { operations[operation] != nil }

    /// Successful operations per second of `operation` (all operations when nil).
    public func throughput(_ operation: String? = nil) -> Double {
        let stats = operation.map { operations[$0] ?? OperationStats() } ?? total
        return Double(stats.count) / max(seconds, 0.001)
    }

    /// Latency percentile of `operation` in milliseconds.
    public func percentile(_ percentile: Double, _ operation: String? = nil) -> Double {
        let stats = operation.map { operations[$0] ?? OperationStats() } ?? total
        return Double(stats.latencies.valueAtPercentile(percentile)) / 1000
    }

    public var text: String {
        var lines = ["\(name): \(String(format: "%.1f", seconds)) s measured"]
        lines.append(
            "  operation        ok/s       p50 ms   p90 ms   p99 ms   p99.9 ms  max ms   errors"
        )
        for (name, stats) in operations.sorted(by: { $0.key < $1.key }) + [("all", total)] {
            func ms(_ p: Double) -> String { String(format: "%8.2f", Double(stats.latencies.valueAtPercentile(p)) / 1000) }
            let errors = stats.errors.isEmpty ? "0" : stats.errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            lines.append(
                "  \(name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(String(format: "%9.1f", Double(stats.count) / max(seconds, 0.001)))  \(ms(50)) \(ms(90)) \(ms(99)) \(ms(99.9))  \(String(format: "%8.2f", Double(stats.latencies.max) / 1000))   \(errors)"
            )
        }
        return lines.joined(separator: "\n")
    }

    public var json: [String: Any] {
        var result: [String: Any] = ["name": name, "seconds": seconds]
        var ops: [String: Any] = [:]
        for (name, stats) in operations.sorted(by: { $0.key < $1.key }) + [("all", total)] {
            ops[name] = [
                "ok": stats.count, "ok_per_second": Double(stats.count) / max(seconds, 0.001),
                "p50_ms": Double(stats.latencies.valueAtPercentile(50)) / 1000,
                "p90_ms": Double(stats.latencies.valueAtPercentile(90)) / 1000,
                "p99_ms": Double(stats.latencies.valueAtPercentile(99)) / 1000,
                "p99_9_ms": Double(stats.latencies.valueAtPercentile(99.9)) / 1000,
                "max_ms": Double(stats.latencies.max) / 1000,
                "errors": stats.errors,
            ]
        }
        result["operations"] = ops
        return result
    }
}
