import ServiceLifecycle

/// Runs a closure as a lifecycle service, cancelled on graceful shutdown.
struct TaskService: Service {
    let body: @Sendable () async -> Void

    func run() async throws {
        await cancelWhenGracefulShutdown { await body() }
    }
}

/// Runs `prepare`, then the service `then` makes, as one service: for a
/// server that must not take calls before its storage is ready. A graceful
/// shutdown during `prepare` reaches the service as soon as it runs.
struct ServingAfter<Serving: Service>: Service {
    var prepare: @Sendable () async throws -> Void = {}
    let then: @Sendable () async throws -> Serving

    func run() async throws {
        try await prepare()
        try await then().run()
    }
}

/// How a cluster process shuts down.
enum ProcessShutdown {
    /// How long a graceful shutdown may drain before what is left is
    /// cancelled (connections closed at once): within the 30 s a process
    /// manager usually grants before SIGKILL, so the process still closes
    /// its database connections itself. A client stalled in the middle of a
    /// request would otherwise hold the drain until its idle timeout (75 s).
    static let drainLimit = Duration.seconds(15)
}
