import NIOCore

/// Whether a client's connection to one cell service is there, being made,
/// or failed a moment ago: the decisions only, no I/O.
///
/// A call asks ``nextCall(now:)`` what to do: use the connection, wait for
/// the one being made, make one, or fail at once while backing off after a
/// failed attempt (100 ms, doubling up to 2 s), so that a dead cell service
/// costs its callers nothing but a quick error.
struct CellConnectionState<Connection: AnyObject, Attempt> {
    enum State {
        case idle
        case connecting(Attempt)
        case ready(Connection)
        case backingOff(until: NIODeadline, reason: String, delay: TimeAmount)
        case shutDown
    }

    enum Action {
        case use(Connection)
        case wait(Attempt)
        case connect
        case fail(CellProtocolError)
    }

    static var firstBackoff: TimeAmount { .milliseconds(100) }
    static var maximumBackoff: TimeAmount { .seconds(2) }

    private(set) var state: State = .idle
    /// The delay after the last failed attempt, kept while connecting so a repeat failure backs off longer.
    private var lastDelay: TimeAmount?

    /// What a call should do now. `.connect` obliges the caller to report ``connecting(_:)``.
    func nextCall(now: NIODeadline) -> Action {
        switch state {
        case .idle: return .connect
        case .connecting(let attempt): return .wait(attempt)
        case .ready(let connection): return .use(connection)
        case .backingOff(let until, let reason, _):
            return now < until ? .fail(.unreachable(reason)) : .connect
        case .shutDown: return .fail(.shutDown)
        }
    }

    mutating func connecting(_ attempt: Attempt) {
        if case .backingOff(_, _, let delay) = state { lastDelay = delay }
        guard case .shutDown = state else {
            state = .connecting(attempt)
            return
        }
    }

    /// The attempt succeeded. Returns false when the client was shut down meanwhile (close the connection).
    mutating func connected(_ connection: Connection) -> Bool {
        guard case .connecting = state else { return false }
        state = .ready(connection)
        lastDelay = nil
        return true
    }

    mutating func connectFailed(reason: String, now: NIODeadline) {
        guard case .connecting = state else { return }
        let delay = lastDelay.map { min($0 * 2, Self.maximumBackoff) } ?? Self.firstBackoff
        state = .backingOff(until: now + delay, reason: reason, delay: delay)
    }

    /// The connection closed: the next call makes a new one.
    mutating func closed(_ connection: Connection) {
        guard case .ready(let current) = state, current === connection else { return }
        state = .idle
    }

    /// Returns the connection to close (once its calls are done), if there is one.
    mutating func shutDown() -> Connection? {
        defer { state = .shutDown }
        if case .ready(let connection) = state { return connection }
        return nil
    }
}
