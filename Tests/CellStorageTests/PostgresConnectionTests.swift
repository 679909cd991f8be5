import CellRouting
import Foundation
import LocalCluster
import Logging
import OrderCellPlatform
import Synchronization
import Testing

@testable import CellStorage

/// Captures what a logger is told, so a test can see why connections failed.
private final class LogCapture: Sendable {
    let lines = Mutex<[String]>([])

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let text = "\(event.message) \((event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " "))"
            capture.lines.withLock { $0.append(text) }
        }
    }

    var logger: Logger { Logger(label: "ordercell.test.capture") { _ in Handler(capture: self) } }
}

/// Connections to the suite's real PostgreSQL servers (plaintext, no certificates).
extension OrderStoreSuite {
    @Test("TLS required against a server that offers none fails for that reason, rather than falling back to plaintext")
    func requiredTLSNeverFallsBack() async throws {
        let servers = try #require(PostgresTestServers.current, "the suite needs the .postgresServers trait")
        var configuration = try await servers.makeDatabase()
        configuration.tls = .require
        configuration.replicas = []
        configuration.callTimeout = .seconds(3)
        let capture = LogCapture()
        await #expect(throws: (any Error).self) { try await PostgresOrderStore.withStore(configuration, logger: capture.logger) { _ in } }
        let failures = capture.lines.withLock { $0 }.filter { $0.hasPrefix("Connection creation failed") }
        // The store never opened (above: no plaintext fallback), and the attempts failed for the missing TLS.
        // Under load an attempt the closing pool cut short may fail for that instead: it says nothing about TLS.
        #expect(failures.contains { $0.contains("sslUnsupported") }, "\(failures.prefix(3))")
    }

    @Test("a probe tells a primary from a standby, nothing listening from a session that could not be set up")
    func serverProbe() async throws {
        let servers = try #require(PostgresTestServers.current, "the suite needs the .postgresServers trait")
        let cell = try await servers.makeDatabase()
        var logger = Logger(label: "ordercell.test.probe")
        logger.logLevel = .critical
        func probe(_ endpoint: PostgresEndpoint, _ tls: PostgresTLSMode) async -> PostgresServerProbe {
            await PostgresServerProbe.probe(endpoint, tls: tls, timeout: .seconds(10), logger: logger)
        }
        #expect(await probe(cell.primary, .disable) == .answered(inRecovery: false))
        // The database just made on the primary may not have reached the replica yet; `postgres` is there from the start.
        var standby = try #require(cell.replicas.first)
        standby.database = "postgres"
        #expect(await probe(standby, .disable) == .answered(inRecovery: true))

        // Something answers, but not as asked: not known to be down (a failover must not go ahead).
        #expect(await probe(cell.primary, .require) == .tlsUnavailable)
        let why = await PostgresServerProbe.diagnose(cell.primary, tls: .require, flag: "--database-tls", failure: CancellationError(), logger: logger)
        #expect(why.contains("offers no TLS") && why.contains("--database-tls disable"), "\(why)")
        var missing = cell.primary
        missing.database = "no_such_database"
        guard case .refused = await probe(missing, .disable) else { Issue.record("unknown database: expected refused"); return }

        // Nothing listening: down.
        var closed = cell.primary
        closed.port = try FreePort.find()
        guard case .unreachable = await probe(closed, .disable) else { Issue.record("closed port: expected unreachable"); return }
    }
}
