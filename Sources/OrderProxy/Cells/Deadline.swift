/// A call that did not finish before its deadline.
public struct DeadlineExceeded: Error, Sendable, CustomStringConvertible {
    public var timeout: Duration
    public var description: String { "no answer within \(timeout)" }
}

/// Runs `operation`, throwing ``DeadlineExceeded`` if it takes longer than
/// `timeout`; the operation is cancelled then.
func withDeadline<T: Sendable>(
    _ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw DeadlineExceeded(timeout: timeout)
        }
        defer { group.cancelAll() }
        guard let result = try await group.next() else { throw CancellationError() }
        return result
    }
}
