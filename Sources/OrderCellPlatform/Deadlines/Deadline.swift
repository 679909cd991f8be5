import NIOCore
import NIOPosix
import Synchronization

/// A call that did not finish before its deadline.
public struct DeadlineExceeded: Error, Sendable, CustomStringConvertible {
    public var timeout: Duration
    public init(timeout: Duration) { self.timeout = timeout }
    public var description: String { "no answer within \(timeout)" }
}

/// Runs `operation` with a deadline.
///
/// When the deadline passes first, the caller gets ``DeadlineExceeded`` at
/// once and the operation is cancelled; unlike a task group, the caller does
/// not wait for an operation that ignores cancellation (a query on a
/// connection whose server went silent), so the deadline holds whatever the
/// operation does.
public func withDeadline<T: Sendable>(
    _ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            race.start(continuation)
            let work = Task {
                do {
                    race.finish(.success(try await operation()))
                } catch {
                    race.finish(.failure(error))
                }
            }
            // The timer is an event-loop timer, far cheaper than a sleeping task.
            let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
            let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(nanoseconds)) {
                if race.finish(.failure(DeadlineExceeded(timeout: timeout))) { work.cancel() }
            }
            race.attach(work: work, timer: timer)
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
        race.cancelTasks()
    }
}

/// The shared state of one deadline race: whoever finishes first resumes the caller.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var finished = false
        var work: Task<Void, Never>?
        var timer: Scheduled<Void>?
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        let early: Result<T, any Error>? = state.withLock { state in
            if let early = state.early {
                state.early = nil
                return early
            }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func attach(work: Task<Void, Never>, timer: Scheduled<Void>) {
        let finished = state.withLock { state in
            state.work = work
            state.timer = timer
            return state.finished
        }
        if finished { timer.cancel() }
    }

    /// Resumes the caller unless someone already did; returns whether this call won.
    @discardableResult
    func finish(_ result: Result<T, any Error>) -> Bool {
        let (won, continuation, timer): (Bool, CheckedContinuation<T, any Error>?, Scheduled<Void>?) = state.withLock { state in
            guard !state.finished else { return (false, nil, nil) }
            state.finished = true
            let continuation = state.continuation
            state.continuation = nil
            if continuation == nil { state.early = result }
            return (true, continuation, state.timer)
        }
        timer?.cancel()
        continuation?.resume(with: result)
        return won
    }

    func cancelTasks() {
        let (work, timer) = state.withLock { ($0.work, $0.timer) }
        work?.cancel()
        timer?.cancel()
    }
}
