import OrderCellPlatform
import CellRouting
import Logging
import OrderModel
import PostgresNIO

extension ControlPlane {
    /// Fails cell `cell` over to its first replica: promotes it, stops it
    /// waiting for a synchronous standby it no longer has, and publishes the
    /// routing change that moves the cell's services to it.
    ///
    /// Refused while the cell's primary still answers as a primary: two
    /// primaries would split the cell's writes (and a repeated request,
    /// after the first promoted the replica, would otherwise promote the
    /// next replica, which lacks the writes made since).
    ///
    /// - Parameter tls: TLS to the cell's PostgreSQL servers, as its cell services use.
    public func failover(cell: CellID, author: String, tls: PostgresTLSMode, logger: Logger) async throws -> RoutingTable {
        let table = routingTable
        guard let route = table.cells[cell] else { throw OrderError(.notFound, "cell \(cell) is not in the routing table") }
        guard let storage = route.storage, let replica = storage.replicas.first else {
            throw OrderError.invalidRequest("cell \(cell) has no replica to promote")
        }
        let primary = storage.primary
        switch await PostgresServerProbe.probe(primary, tls: tls, timeout: .seconds(2), logger: logger) {
        case .unreachable:
            break
        case .answered(inRecovery: false):
            throw OrderError(
                .invalidRequest,
                "cell \(cell)'s primary \(primary) still answers as a primary: stop it before failing over (no split brain)"
            )
        case .answered(inRecovery: true):
            throw OrderError(.invalidRequest, "cell \(cell)'s primary \(primary) answers as a standby: the routing table is out of date")
        case .tlsUnavailable:
            throw OrderError(
                .invalidRequest,
                "cell \(cell)'s primary \(primary) answered but offers no TLS, which --postgres-tls requires: not failing over while it may still take writes"
            )
        case .refused(let reason):
            // Something answered there; a failover would risk two primaries.
            throw OrderError(
                .invalidRequest,
                "cell \(cell)'s primary \(primary) answered but could not be checked (\(reason)): not failing over while it may still take writes"
            )
        }
        try await CellFailover.promote(replica, tls: tls, logger: logger)
        return try await change(author: author, reason: "failover of cell \(cell): promoted \(replica), was \(storage.primary)") { table in
            try table.updatingCell(cell) { route in
                route.storage = CellStorageRoute(primary: replica, replicas: Array(storage.replicas.dropFirst()))
            }
        }
    }
}

/// Promotion of a cell's PostgreSQL standby.
enum CellFailover {
    /// A client of one of the cell's servers whose statements the server ends after `statementTimeout`.
    private static func configuration(
        _ endpoint: PostgresEndpoint, tls: PostgresTLSMode, statementTimeout: Duration
    ) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.username, password: endpoint.password,
            database: endpoint.database, tls: tls.clientTLS
        )
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(statementTimeout.wholeMilliseconds)"), ("application_name", "ordercell-failover"),
        ]
        return configuration
    }

    /// Promotes a PostgreSQL standby (idempotent) and makes it commit without a standby.
    static func promote(_ endpoint: PostgresEndpoint, tls: PostgresTLSMode, logger: Logger) async throws {
        // pg_promote waits up to 60 s for the promotion; the whole call, 90 s.
        let configuration = configuration(endpoint, tls: tls, statementTimeout: .seconds(75))
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let run = Task { await client.run() }
        defer { run.cancel() }
        try await withDeadline(.seconds(90)) {
            var inRecovery = false
            for try await value in try await client.query("SELECT pg_is_in_recovery()", logger: logger).decode(Bool.self) {
                inRecovery = value
            }
            if inRecovery {
                for try await promoted in try await client.query("SELECT pg_promote(true, 60)", logger: logger).decode(Bool.self) {
                    guard promoted else { throw OrderError(.internalError, "PostgreSQL did not finish promotion within 60 s") }
                }
            }
            // The promoted server inherited 'wait for one standby'; it has none until an operator builds one.
            try await client.query("ALTER SYSTEM SET synchronous_standby_names = ''", logger: logger)
            try await client.query("SELECT pg_reload_conf()", logger: logger)
        }
    }
}
