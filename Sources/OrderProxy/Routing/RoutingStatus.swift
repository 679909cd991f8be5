import Foundation
import Synchronization

/// Where a proxy's routing came from and how fresh it is: what operators
/// read at `/admin/proxy` to know whether the proxy runs on a stale release
/// (e.g. started from its disk snapshot while the control plane is down).
public final class RoutingStatus: Sendable {
    /// Where the installed release came from.
    public enum Source: String, Sendable {
        case controlPlane = "control_plane"
        case snapshot
        case inProcess = "in_process"
    }

    struct State {
        var source: Source
        var releaseReceivedAt: Date?
        var lastContact: Date?
    }

    private let state: Mutex<State>

    public init(source: Source, releaseReceivedAt: Date? = nil, lastContact: Date? = nil) {
        state = Mutex(State(source: source, releaseReceivedAt: releaseReceivedAt, lastContact: lastContact))
    }

    /// The control plane answered (with or without a new release).
    public func contacted(at now: Date = Date()) {
        state.withLock { $0.lastContact = now }
    }

    /// A release from the control plane was installed.
    public func installedFromControlPlane(at now: Date = Date()) {
        state.withLock { state in
            state.source = .controlPlane
            state.releaseReceivedAt = now
            state.lastContact = now
        }
    }

    /// The status at `now`.
    public func report(at now: Date = Date()) -> Report {
        state.withLock { state in
            Report(
                source: state.source, releaseReceivedAt: state.releaseReceivedAt, lastContact: state.lastContact,
                secondsSinceContact: state.lastContact.map { max(0, now.timeIntervalSince($0)) }
            )
        }
    }

    /// The routing status as reported.
    public struct Report: Sendable {
        public var source: Source
        /// When the installed release was received (for a snapshot: when the snapshot was written).
        public var releaseReceivedAt: Date?
        public var lastContact: Date?
        /// Seconds since the control plane last answered (nil: not since start).
        public var secondsSinceContact: Double?
    }
}
