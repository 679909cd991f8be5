import CellRouting
import NIOSSL
import OrderCellPlatform
import OrderModel
import PostgresNIO

/// Settings of a cell's PostgreSQL storage.
public struct PostgresCellConfiguration: Sendable {
    public var primary: PostgresEndpoint
    /// Replicas serve `consistency=eventual` reads.
    public var replicas: [PostgresEndpoint]
    public var tls: PostgresTLSMode
    /// Connections per server.
    public var maximumConnections: Int
    /// Connections per server opened up front and never closed for being
    /// idle. A cell service keeps all of them (the default): a connection
    /// beyond this number arms an idle timer every time it is returned to
    /// the pool, which costs a timer task per query under load.
    public var minimumConnections: Int
    /// Client-side deadline of every call (queries are also bounded server-side).
    public var callTimeout: Duration
    /// Server-side `statement_timeout`.
    public var statementTimeout: Duration
    /// A replica further behind than this is taken out of reads.
    public var maximumReplicaLag: Duration

    public init(
        primary: PostgresEndpoint, replicas: [PostgresEndpoint] = [], tls: PostgresTLSMode = .require,
        maximumConnections: Int = 16, minimumConnections: Int? = nil, callTimeout: Duration = .seconds(3), statementTimeout: Duration = .seconds(2),
        maximumReplicaLag: Duration = .seconds(2)
    ) {
        self.primary = primary
        self.replicas = replicas
        self.tls = tls
        self.maximumConnections = maximumConnections
        self.minimumConnections = min(minimumConnections ?? maximumConnections, maximumConnections)
        self.callTimeout = callTimeout
        self.statementTimeout = statementTimeout
        self.maximumReplicaLag = maximumReplicaLag
    }

    func clientConfiguration(for endpoint: PostgresEndpoint, applicationName: String) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.username, password: endpoint.password,
            database: endpoint.database, tls: tls.clientTLS
        )
        let statementMilliseconds = statementTimeout.wholeMilliseconds
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(statementMilliseconds)"),
            ("lock_timeout", "\(statementMilliseconds)"),
            ("idle_in_transaction_session_timeout", "\(statementMilliseconds * 5)"),
            ("application_name", applicationName),
        ]
        configuration.options.maximumConnections = maximumConnections
        configuration.options.minimumConnections = minimumConnections
        // No keep-alive query: it arms a timer each time a connection is
        // returned to the pool. A connection that went dead while idle is
        // found by the call deadline and statement_timeout of its next query.
        configuration.options.keepAliveBehavior = nil
        configuration.options.connectTimeout = callTimeout
        return configuration
    }
}
