import CellRouting
import Foundation
import Logging
import OrderModel
import Synchronization

/// The control plane: keeps the routing table and dynamic config as
/// immutable, numbered releases in the control database (PostgreSQL in a
/// cluster, SQLite embedded), carries out operator and health-checker
/// changes with optimistic concurrency, rolls back, and hands every new
/// release to whoever follows it (long poll, in-process observers).
public final class ControlPlane: Sendable {
    private let store: any RoutingReleaseStore
    private let current: Mutex<RoutingTable>
    /// Serialises publishing within this process, so a change never races its own predecessor.
    private let publishing = PublishQueue()
    private let observers = Mutex<[@Sendable (RoutingTable) -> Void]>([])
    /// Long polls parked until the next release (woken by ``adopt(_:)``),
    /// and polls that gave up before they could park.
    private struct Waiters {
        var parked: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var abandoned: Set<UInt64> = []
        /// Set by ``endLongPolls()``: nobody parks any more.
        var ended = false
    }
    private let waiters = Mutex(Waiters())
    private let nextWaiter = Atomic<UInt64>(0)
    private let prepare: (@Sendable (RoutingTable) async throws -> Void)?
    private let logger: Logger

    /// Opens the control plane over `store`, publishing `initialTable` as
    /// release 1 when the store is empty.
    ///
    /// - Parameter prepare: called with every release before it is
    ///   published, to make ready what it needs (the embedded deployment
    ///   opens the database of a cell added to the routing); an error
    ///   refuses the release.
    public init(
        store: any RoutingReleaseStore, initialTable: RoutingTable, logger: Logger,
        prepare: (@Sendable (RoutingTable) async throws -> Void)? = nil
    ) async throws {
        self.store = store
        self.logger = logger
        self.prepare = prepare
        if let latest = try await store.latest() {
            current = Mutex(latest.table)
        } else {
            let first = initialTable.publishedAs(version: 1).startingEpoch(UUID().uuidString.lowercased())
            try await store.publish(RoutingRelease(table: first, author: "ordercell", reason: "initial routing table"))
            current = Mutex(first)
        }
    }

    /// The newest release's routing table.
    public var routingTable: RoutingTable { current.withLock { $0 } }

    /// Calls `observer` with every release published from now on (in-process followers).
    public func onPublish(_ observer: @escaping @Sendable (RoutingTable) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    /// Publishes a change made against the current table.
    ///
    /// - Parameter expectedVersion: the version the author saw; when another
    ///   release came first the change is refused with `version_conflict`.
    public func change(
        expectedVersion: UInt64? = nil, author: String, reason: String, _ body: (RoutingTable) throws -> RoutingTable
    ) async throws(OrderError) -> RoutingTable {
        try await publishing.run { () async throws(OrderError) -> RoutingTable in
            let base = routingTable
            if let expectedVersion, expectedVersion != base.version {
                throw OrderError(.versionConflict, "the change was made against version \(expectedVersion) but version \(base.version) is current")
            }
            let next: RoutingTable
            do {
                next = try body(base)
            } catch let error as RoutingTableError {
                switch error {
                case .unknownCell, .unknownPartition: throw OrderError(.notFound, error.description)
                case .duplicateCell(let cell): throw OrderError(.alreadyExists, "cell \(cell) is in the routing table already")
                case .duplicatePartition(let name): throw OrderError(.alreadyExists, "partition \(name) exists already")
                case .invalidWeight, .invalidPolicy, .invalidIndexSlots: throw OrderError.invalidRequest(error.description)
                }
            } catch let error as OrderError {
                throw error
            } catch {
                throw OrderError.invalidRequest("\(error)")
            }
            // A change that changes nothing publishes nothing (and bumps no version).
            guard next.publishedAs(version: base.version) != base else { return base }
            return try await publish(RoutingRelease(table: next, author: author, reason: reason))
        }
    }

    /// Publishes the end of the merchant-key index backfill (the
    /// reconciler found every order made before the index holding its key);
    /// nothing when it is over already.
    @discardableResult
    public func endIndexBackfill() async throws(OrderError) -> RoutingTable {
        try await change(author: "merchant-key reconciler", reason: "index backfill done: every order made before the index holds its key") {
            $0.indexBackfill ? try $0.endingIndexBackfill() : $0
        }
    }

    /// Publishes the content of release `version` again, as the next release.
    public func rollback(to version: UInt64, expectedVersion: UInt64? = nil, author: String, reason: String) async throws(OrderError) -> RoutingTable {
        try await publishing.run { () async throws(OrderError) -> RoutingTable in
            let base = routingTable
            if let expectedVersion, expectedVersion != base.version {
                throw OrderError(.versionConflict, "the rollback was asked against version \(expectedVersion) but version \(base.version) is current")
            }
            guard version < base.version else { throw OrderError.invalidRequest("release \(version) is not earlier than the current \(base.version)") }
            let target: RoutingRelease?
            do { target = try await store.release(version) } catch { throw Self.unavailable(error) }
            guard let target else { throw OrderError(.notFound, "no release \(version)") }
            let restored: RoutingTable
            do {
                restored = try base.rollingBack(to: target.table)
            } catch {
                throw OrderError.invalidRequest("release \(version) cannot be restored: \(error)")
            }
            return try await publish(
                RoutingRelease(table: restored, author: author, reason: "rollback to release \(version): \(reason)", rolledBackTo: version)
            )
        }
    }

    private func publish(_ release: RoutingRelease) async throws(OrderError) -> RoutingTable {
        if let prepare {
            do {
                try await prepare(release.table)
            } catch let error as OrderError {
                throw error
            } catch {
                throw OrderError(.internalError, "the release could not be prepared: \(error)")
            }
        }
        do {
            try await store.publish(release)
        } catch let error as RoutingPublishError {
            // Another control plane instance published first: pick up its release, refuse this one.
            if let latest = try? await store.latest() { adopt(latest.table) }
            throw OrderError(.versionConflict, error.description)
        } catch {
            // The outcome is unknown (e.g. the commit landed but the answer came late): adopt whatever is there.
            if let latest = try? await store.latest(), latest.version >= release.version {
                adopt(latest.table)
                if latest.table == release.table { return release.table }
            }
            throw Self.unavailable(error)
        }
        adopt(release.table)
        logger.notice(
            "routing release published",
            metadata: ["version": "\(release.version)", "author": "\(release.author)", "reason": "\(release.reason)"]
        )
        return release.table
    }

    private func adopt(_ table: RoutingTable) {
        let newer = current.withLock { current in
            guard table.version > current.version else { return false }
            current = table
            return true
        }
        guard newer else { return }
        let parked = waiters.withLock { waiters in
            defer { waiters.parked.removeAll() }
            return Array(waiters.parked.values)
        }
        for waiter in parked { waiter.resume() }
        for observer in observers.withLock({ $0 }) { observer(table) }
    }

    private static func unavailable(_ error: any Error) -> OrderError {
        OrderError(.controlPlaneUnavailable, "the control database is unavailable: \(error)")
    }

    /// Waits until the routing table is newer than `version`, or `timeout`
    /// passes (or the caller is cancelled). Parked, not polling: a release
    /// wakes every waiter at once.
    public func table(after version: UInt64, waitingUpTo timeout: Duration) async -> RoutingTable? {
        if let table = newer(than: version) { return table }
        let id = nextWaiter.add(1, ordering: .relaxed).newValue
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.park(id, after: version) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            // Whichever came first, the waiter must not outlive the call: wake
            // it if it parked, or tell it not to park if it has not yet.
            let parked = waiters.withLock { waiters in
                let parked = waiters.parked.removeValue(forKey: id)
                // Not parked and the table still old: it has not looked yet, and must not park when it does.
                if parked == nil, routingTable.version <= version { waiters.abandoned.insert(id) }
                return parked
            }
            parked?.resume()
        }
        return newer(than: version)
    }

    /// Answers every long poll now, and every later one at once, with what
    /// there is (no newer release: "not modified"): the server is shutting
    /// down, and its followers should poll again elsewhere or later rather
    /// than have their connections cut.
    public func endLongPolls() {
        let parked = waiters.withLock { waiters in
            waiters.ended = true
            defer { waiters.parked.removeAll() }
            return Array(waiters.parked.values)
        }
        for waiter in parked { waiter.resume() }
    }

    private func newer(than version: UInt64) -> RoutingTable? {
        let table = routingTable
        return table.version > version ? table : nil
    }

    /// Parks until ``adopt(_:)`` publishes past `version`. The version is
    /// checked under the waiters' lock, which `adopt` takes after updating
    /// the table, so a release cannot slip between the check and the parking.
    private func park(_ id: UInt64, after version: UInt64) async {
        await withCheckedContinuation { continuation in
            let parked = waiters.withLock { waiters -> Bool in
                if waiters.abandoned.remove(id) != nil { return false }
                guard !waiters.ended, routingTable.version <= version else { return false }
                waiters.parked[id] = continuation
                return true
            }
            if !parked { continuation.resume() }
        }
    }

    // MARK: - Audit

    /// The newest releases, newest first.
    public func history(limit: Int) async throws(OrderError) -> [RoutingReleaseSummary] {
        do { return try await store.history(limit: limit) } catch { throw Self.unavailable(error) }
    }

    /// Release `version` and what it changed from the one before.
    public func release(_ version: UInt64) async throws(OrderError) -> (release: RoutingRelease, changes: [RoutingChange]) {
        do {
            guard let release = try await store.release(version) else { throw OrderError(.notFound, "no release \(version)") }
            let previous = version > 1 ? try await store.release(version - 1) : nil
            return (release, try RoutingDiff.between(previous?.table, release.table))
        } catch let error as OrderError {
            throw error
        } catch {
            throw Self.unavailable(error)
        }
    }
}

/// Runs publishing steps one at a time (FIFO), across suspension points.
actor PublishQueue {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    private func acquire() async {
        if busy {
            await withCheckedContinuation { waiting.append($0) }
        } else {
            busy = true
        }
    }

    private func release() {
        if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
    }

    nonisolated func run<T: Sendable>(_ body: () async throws(OrderError) -> T) async throws(OrderError) -> T {
        await acquire()
        do {
            let result = try await body()
            await release()
            return result
        } catch {
            await release()
            throw error
        }
    }
}
