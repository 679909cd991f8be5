import CellRouting
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// What one direct connection to a PostgreSQL server found.
///
/// A failover must know whether the old primary is down, not merely that a
/// query failed: a connection pool retries and ends in a deadline whatever
/// the cause, and a certificate the control plane does not trust would then
/// read as "down" and promote a replica beside a primary still taking
/// writes. One connection attempt of its own gives the real cause.
public enum PostgresServerProbe: Sendable, Equatable {
    /// It answered; `inRecovery` says it is a standby.
    case answered(inRecovery: Bool)
    /// Nothing took the connection (refused, unreachable, connect timeout) or it never answered.
    case unreachable(String)
    /// Something answered but offers no TLS, and TLS was required: whether it is down is not known.
    case tlsUnavailable
    /// Something answered but the session could not be set up (TLS,
    /// authentication, no such database): whether it is down is not known.
    case refused(String)

    /// Connects to `endpoint` once and asks whether it is in recovery, all within `timeout`.
    public static func probe(_ endpoint: PostgresEndpoint, tls: PostgresTLSMode, timeout: Duration, logger: Logger) async -> PostgresServerProbe {
        let configuration: PostgresConnection.Configuration
        do {
            configuration = try connectionConfiguration(endpoint, tls: tls, timeout: timeout)
        } catch {
            return .refused("cannot set up TLS: \(error)")
        }
        let connection: PostgresConnection
        do {
            connection = try await withDeadline(timeout) {
                try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
            }
        } catch {
            return classify(error)
        }
        let found: PostgresServerProbe
        do {
            found = try await withDeadline(timeout) {
                for try await inRecovery in try await connection.query("SELECT pg_is_in_recovery()", logger: logger).decode(Bool.self) {
                    return .answered(inRecovery: inRecovery)
                }
                return .refused("pg_is_in_recovery() returned no row")
            }
        } catch is DeadlineExceeded {
            found = .unreachable("connected, but no answer within \(timeout)")
        } catch {
            found = .refused("\(error)")
        }
        try? await connection.close()
        return found
    }

    /// Why a call to `endpoint` failed with `failure`, in words for an
    /// operator, from a probe of its own; `flag` is the option that sets its TLS.
    public static func diagnose(
        _ endpoint: PostgresEndpoint, tls: PostgresTLSMode, flag: String, failure: any Error, logger: Logger
    ) async -> String {
        switch await probe(endpoint, tls: tls, timeout: .seconds(5), logger: logger) {
        case .unreachable(let reason):
            return "nothing answers at \(endpoint) (\(reason))"
        case .tlsUnavailable:
            return "\(endpoint) offers no TLS and \(flag) is require (a loopback development server without certificates needs \(flag) disable)"
        case .refused(let reason):
            return "\(endpoint) refused the session: \(reason)"
        case .answered:
            return "\(endpoint) answers, but the call failed: \(String(reflecting: failure))"
        }
    }

    static func connectionConfiguration(_ endpoint: PostgresEndpoint, tls: PostgresTLSMode, timeout: Duration) throws -> PostgresConnection.Configuration {
        let connectionTLS: PostgresConnection.Configuration.TLS
        switch tls {
        case .disable: connectionTLS = .disable
        case .require: connectionTLS = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var configuration = PostgresConnection.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.username, password: endpoint.password,
            database: endpoint.database, tls: connectionTLS
        )
        configuration.options.connectTimeout = TimeAmount(timeout)
        return configuration
    }

    /// A failed connection attempt: down only when nothing took the connection.
    static func classify(_ error: any Error) -> PostgresServerProbe {
        if error is DeadlineExceeded { return .unreachable("\(error)") }
        guard let error = error as? PSQLError else { return .refused("\(error)") }
        if error.code == .sslUnsupported { return .tlsUnavailable }
        if error.code == .connectionError, let underlying = error.underlying {
            if underlying is NIOConnectionError || underlying is IOError { return .unreachable("\(underlying)") }
            if let channel = underlying as? ChannelError, case .connectTimeout = channel { return .unreachable("\(underlying)") }
        }
        return .refused(String(reflecting: error))
    }
}
