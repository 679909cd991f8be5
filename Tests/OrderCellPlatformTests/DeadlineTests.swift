import OrderCellPlatform
import Dispatch
import Testing

@Suite("Deadlines")
struct DeadlineTests {
    /// An operation that ignores cancellation, like a query on a connection whose server went silent.
    static func stubborn(for milliseconds: Int) async -> String {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(milliseconds)) { continuation.resume(returning: "late") }
        }
    }

    @Test func theDeadlineHoldsEvenWhenTheWorkIgnoresCancellation() async throws {
        await #expect(throws: DeadlineExceeded.self) {
            _ = try await withDeadline(.milliseconds(50)) { await Self.stubborn(for: 3_000) }
        }
    }

    @Test func fastWorkReturnsItsValueAndErrors() async throws {
        #expect(try await withDeadline(.seconds(5)) { 42 } == 42)
        struct Refused: Error {}
        await #expect(throws: Refused.self) { _ = try await withDeadline(.seconds(5)) { () async throws -> Int in throw Refused() } }
    }

    @Test func cancellingTheCallerEndsTheWait() async throws {
        let task = Task { try await withDeadline(.seconds(30)) { await Self.stubborn(for: 3_000) } }
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
    }
}
