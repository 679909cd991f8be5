import ServiceLifecycle

/// Runs a closure as a lifecycle service, cancelled on graceful shutdown.
struct TaskService: Service {
    let body: @Sendable () async -> Void

    func run() async throws {
        await cancelWhenGracefulShutdown { await body() }
    }
}
