/// A condition a test waited for that did not come true in time.
public struct ConditionNotMet: Error, CustomStringConvertible {
    public var timeout: Duration
    public var description: String { "the condition did not hold within \(timeout)" }
}

/// Waits until `condition` holds, checking every 5 ms; throws after `timeout`.
/// Tests wait for what they need instead of sleeping for a guess.
public func waitUntil(timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
    let giveUp = ContinuousClock.now.advanced(by: timeout)
    while !condition() {
        guard ContinuousClock.now < giveUp else { throw ConditionNotMet(timeout: timeout) }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// Waits until `condition`, which may ask a cell or a server, holds, checking every 5 ms; throws after `timeout`.
public func waitUntil(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws {
    let giveUp = ContinuousClock.now.advanced(by: timeout)
    while try await !condition() {
        guard ContinuousClock.now < giveUp else { throw ConditionNotMet(timeout: timeout) }
        try await Task.sleep(for: .milliseconds(5))
    }
}
