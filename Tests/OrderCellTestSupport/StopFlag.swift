import Synchronization

/// A flag one task sets and others read: a load told to stop.
public final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public var isSet: Bool { flag.load(ordering: .relaxed) }

    public func set() { flag.store(true, ordering: .relaxed) }
}

/// A count shared by a test's tasks: how far a load has come, for the test
/// to wait on (``waitUntil(timeout:_:)``) instead of sleeping.
public final class Tally: Sendable {
    private let count = Atomic<Int>(0)

    public init() {}

    public var value: Int { count.load(ordering: .relaxed) }

    public func add() { count.add(1, ordering: .relaxed) }
}
