import ServiceLifecycle

/// Runs a closure as a lifecycle service, cancelled on graceful shutdown.
struct TaskService: Service {
    let body: @Sendable () async -> Void

    func run() async throws {
        await cancelWhenGracefulShutdown { await body() }
    }
}

/// Runs `prepare`, then the server `server` makes, as one service: for a
/// server that must not take calls before its storage is ready.
struct ServingAfter<Server: Service>: Service {
    let prepare: @Sendable () async throws -> Void
    let server: @Sendable () async throws -> Server

    func run() async throws {
        try await prepare()
        try await server().run()
    }
}
