import GRPCCore

/// The `grpc-timeout` request header: how long a gRPC caller waits, as at
/// most eight digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`), e.g. `500m`.
///
/// When a caller's timeout passes, the gRPC server only signals the
/// handler's context (its task runs on); a create queued for a group commit
/// would be stored after the caller gave up. A deadline stops it
/// (``CellService/create(_:deadline:)``), so the cell RPC reads the header
/// and hands the deadline down, as the cell wire protocol does. It counts
/// from when the handler starts, a little after the caller started waiting.
enum GRPCTimeout {
    /// The timeout in `text`, or nil when it is not one (a caller without one waits as long as it likes).
    static func parse(_ text: String) -> Duration? {
        guard let unit = text.last, (2...9).contains(text.utf8.count) else { return nil }
        let digits = text.dropLast()
        guard digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }), let value = Int64(digits) else { return nil }
        switch unit {
        case "H": return .seconds(value * 3600)
        case "M": return .seconds(value * 60)
        case "S": return .seconds(value)
        case "m": return .milliseconds(value)
        case "u": return .microseconds(value)
        case "n": return .nanoseconds(value)
        default: return nil
        }
    }

    /// When a call with `metadata` stops being waited for, counted from `now` (when its handler starts); nil without a valid timeout.
    static func deadline(in metadata: Metadata, from now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        for case .string(let text) in metadata["grpc-timeout"] {
            if let timeout = parse(text) { return now.advanced(by: timeout) }
        }
        return nil
    }
}
