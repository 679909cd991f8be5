import ArgumentParser
import AsyncHTTPClient
import CellProtocol
import CellRouting
import CellService
import ControlPlane
import Foundation
import LocalCluster
import Logging
import OrderCellCluster
import OrderCellPlatform
import OrderHTTP
import OrderModel

/// Logging to standard error at the chosen level.
func bootstrapLogging(_ level: String) {
    let level = Logger.Level(rawValue: level) ?? .notice
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

/// Writes a line to standard output at once (the output may be a file).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The path of this executable, to start the cluster's processes with.
func ownExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

struct ControlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control", abstract: "Run the control plane: routing releases in the control database, served to proxies and cells."
    )
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8082
    @Option(help: "Control database, postgres://user@host:port/database (a password in it shows in ps: use --database-password-file).")
    var database: String
    @Option(help: "A file holding the control database's password.") var databasePasswordFile: String?
    @Option(help: "TLS to the control database: require or disable (loopback development only).") var databaseTLS = "require"
    @Option(help: "Routing table (JSON) to publish when the control database has none.") var routing: String?
    @OptionGroup var tokens: OperatorTokenOptions
    @OptionGroup var tls: TLSOptions
    @Option(help: "TLS of the admin API's listener: require (--tls-certificate, --tls-key) or disable (loopback development only).")
    var httpTLS = "require"
    @Flag(help: "Run no health checker.") var noHealthCheck = false
    @Option(help: "Health checker: milliseconds between probes of a healthy cell.") var healthInterval: Int64 = 1000
    @Option(help: "Health checker: consecutive failed probes that mark a cell down.") var healthFailures = 3
    @Option(help: "Health checker: consecutive good probes that mark a cell up.") var healthSuccesses = 2
    @Option(help: "Health checker: above this share of cells down, take none out (panic).") var healthPanicShare = 0.5
    @Option(help: "Patroni's etcd, comma-separated client URLs (http://host:port,…): the control plane follows each cell's Patroni leader there. Without it, a cell's storage changes only by a release.")
    var patroniEtcd: String?
    @Option(help: "Patroni's namespace in etcd; cell N's Patroni scope is cell-N.") var patroniNamespace = "/ordercell/"
    @Option(help: "The credential key file (base64 of 32 random bytes): the control plane seals access keys' secrets with it (docs/security.md).")
    var credentialKeyFile: String?
    @Option(help: "The notification key file (base64 of 32 random bytes): the control plane seals merchants' notification secrets with it, the cell services open them (docs/events.md).")
    var notificationKeyFile: String?
    @Option(help: "Log level.") var logLevel = "notice"

    func run() async throws {
        bootstrapLogging(logLevel)
        let logger = Logger(label: "ordercell.control")
        guard (50...3_600_000).contains(healthInterval) else { throw ValidationError("--health-interval must be 50...3600000 milliseconds") }
        guard (1...100).contains(healthFailures), (1...100).contains(healthSuccesses) else {
            throw ValidationError("--health-failures and --health-successes must be 1...100")
        }
        guard (0...1).contains(healthPanicShare) else { throw ValidationError("--health-panic-share must be 0...1") }
        guard let databaseTLS = PostgresTLSMode(rawValue: databaseTLS) else { throw ValidationError("--database-tls must be require or disable") }
        let policy = HealthCheckPolicy(
            failuresToMarkDown: healthFailures, successesToMarkUp: healthSuccesses, intervalMilliseconds: healthInterval,
            maximumBackoffMilliseconds: max(healthInterval, 8 * healthInterval), panicShare: healthPanicShare
        )
        try await ControlProcess(
            host: host, port: port, database: database, databaseTLS: databaseTLS,
            cellTLS: try tls.cellClientTLS(), httpTLS: try tls.httpServerTLS(httpTLS, host: host, logger: logger), tokens: try tokens.operatorTokens(),
            initialRoutingFile: routing,
            healthCheck: noHealthCheck ? nil : policy, patroni: try patroniEtcd.map { try PatroniDCS(etcd: $0, namespace: patroniNamespace) },
            credentials: try credentialKeyFile.map { try CredentialSealer.load(keyFile: $0) },
            notifications: try notificationKeyFile.map { try CredentialSealer.load(keyFile: $0) },
            databasePassword: try databasePasswordFile.map(SecretFile.read)
        ).run(logger: logger)
    }
}

struct CellCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cell", abstract: "Run one cell service of a cell, over the cell's PostgreSQL primary and replicas."
    )
    @Option(help: "The cell number.") var cell: Int
    @Option(help: "Address to serve the cell protocol on.") var host = "127.0.0.1"
    @Option(help: "Port to serve the cell protocol on (the routing table's endpoint host:port).") var port: Int
    @Option(help: "Group commit: inserts of concurrent creates running at once, the rest share the next (0: every create commits alone).")
    var groupCommitBatches = 1
    @OptionGroup var executor: ExecutorTakeoverOption
    @Option(help: "URL of the control plane.") var control: String
    @OptionGroup var controlToken: ControlTokenOption
    @OptionGroup var tls: TLSOptions
    @Option(help: "TLS to PostgreSQL: require or disable (loopback development only).") var postgresTLS = "require"
    @Option(help: "File keeping the last routing table, to start from when the control plane is down.") var routingSnapshot: String?
    @Option(help: "The notification key file (the control plane's): the notifier opens merchants' notification secrets with it. Without it, no notifier runs.")
    var notificationKeyFile: String?
    @OptionGroup var notifier: NotifierOptions
    @Option(help: "Log level.") var logLevel = "notice"

    func run() async throws {
        bootstrapLogging(logLevel)
        guard let id = CellID(cell) else { throw ValidationError("--cell must be 0...9999") }
        let logger = Logger(label: "ordercell.cell")
        let protocolTLS = try tls.cellServerTLS()
        if !protocolTLS.isEnabled {
            // Without mutual TLS a cell service knows nothing of its callers: never beyond this machine.
            guard isLoopback(host) else {
                throw ValidationError("--cell-tls disable serves the cell protocol to anyone: only on loopback (--host 127.0.0.1), never on \(host)")
            }
            logger.warning(
                "--cell-tls disable: the cell protocol's callers are NOT authenticated; anyone on this machine who reaches port \(port) may create and pay orders and set drill faults (loopback development only)"
            )
        }
        guard let postgresTLS = PostgresTLSMode(rawValue: postgresTLS) else { throw ValidationError("--postgres-tls must be require or disable") }
        try await CellProcess(
            cell: id, host: host, port: port, controlURL: control, controlToken: try controlToken.resolved, tls: postgresTLS,
            protocolTLS: protocolTLS, controlHTTP: try tls.controlHTTP(control, logger: logger), snapshotPath: routingSnapshot,
            groupCommit: groupCommitBatches > 0 ? GroupCommitConfiguration(maximumBatches: groupCommitBatches) : nil,
            credentials: try notificationKeyFile.map { try CredentialSealer.load(keyFile: $0) }, notifier: try notifier.configuration()
        )
            .run(logger: logger)
    }
}

struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "proxy", abstract: "Run a proxy: the public HTTP API, routing to the cells over the cell protocol.")
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8080
    @Option(help: "URL of the control plane.") var control: String
    @OptionGroup var controlToken: ControlTokenOption
    @OptionGroup var tokens: OperatorTokenOptions
    @OptionGroup var tls: TLSOptions
    @Option(help: "TLS of the public API's listener: require (--tls-certificate, --tls-key) or disable (loopback, or behind a load balancer that terminates TLS).")
    var httpTLS = "require"
    @OptionGroup var executor: ExecutorTakeoverOption
    @Option(help: "File keeping the last routing table, to start from when the control plane is down.") var routingSnapshot: String?
    @Option(
        help: "The credential key file (the control plane's): the public API takes only requests signed with an access key (docs/security.md)."
    )
    var credentialKeyFile: String?
    @Flag(help: "Take unsigned requests from anyone instead (trying things out): no --credential-key-file needed.") var unsignedRequests = false
    @Option(help: "Log level.") var logLevel = "notice"

    func validate() throws {
        guard (credentialKeyFile == nil) == unsignedRequests else {
            throw ValidationError(
                unsignedRequests
                    ? "--unsigned-requests and --credential-key-file exclude each other"
                    : "give --credential-key-file: the public API takes only signed requests (docs/security.md); --unsigned-requests takes anyone's"
            )
        }
    }

    func run() async throws {
        bootstrapLogging(logLevel)
        let logger = Logger(label: "ordercell.proxy")
        let credentials = try credentialKeyFile.map { try CredentialSealer.load(keyFile: $0) }
        if credentials == nil {
            logger.warning("--unsigned-requests: callers of the public API are NOT authenticated; anyone who reaches this port may act for any merchant")
        }
        try await ProxyProcess(
            host: host, port: port, controlURL: control, controlToken: try controlToken.resolved, tokens: try tokens.operatorTokens(),
            cellTLS: try tls.cellClientTLS(), httpTLS: try tls.httpServerTLS(httpTLS, host: host, logger: logger),
            controlHTTP: try tls.controlHTTP(control, logger: logger),
            snapshotPath: routingSnapshot, credentials: credentials
        )
            .run(logger: logger)
    }
}

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster", abstract: "Start, stop and inspect a whole local cluster on loopback.",
        subcommands: [Up.self, Down.self, Status.self]
    )

    struct Options: ParsableArguments {
        @Option(help: "Directory for the cluster's data, logs and state.") var dir = ".ordercell/cluster"
    }

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a cluster: per cell 2 PostgreSQL servers under Patroni (leader + synchronous standby) and 2 cell services; etcd ×3; control database and plane; 2 proxies."
        )
        @OptionGroup var options: Options
        @Option(help: "Number of cells.") var cells = 2
        @Option(help: "First port; see docs/deployment.md for the layout.") var basePort = 8080
        @Option(help: "Bearer token of the operator endpoints.") var adminToken = ProcessInfo.processInfo.environment["ORDERCELL_ADMIN_TOKEN"] ?? "dev-admin-token"
        @Option(help: "Cell commits wait for the replica: on (default) or off (faster; an acknowledged order can be lost with the primary).")
        var synchronousCommit = "on"
        @Flag(help: "Patroni's synchronous_mode_strict: commits wait for a standby even while a cell has none (after a failover, until the old leader rejoins).")
        var synchronousModeStrict = false
        @Flag(help: "The proxies take unsigned requests from anyone (trying things out). By default they take only signed ones (docs/security.md).")
        var unsignedRequests = false
        @Flag(help: "Every hop in plaintext (trying things out on loopback). By default the public API and the control plane speak HTTPS and the cell protocol mutual TLS, with certificates of a CA made for the cluster.")
        var plaintext = false
        @OptionGroup var notifier: NotifierOptions

        func run() async throws {
            _ = try notifier.configuration()
            guard ["on", "off"].contains(synchronousCommit) else { throw ValidationError("--synchronous-commit must be on or off") }
            if synchronousModeStrict && synchronousCommit == "off" { throw ValidationError("--synchronous-mode-strict needs --synchronous-commit on") }
            let runner = LocalClusterRunner(
                directory: options.dir, cells: cells, basePort: basePort, adminToken: adminToken, executable: ownExecutable(),
                synchronousCommit: synchronousCommit == "on" ? .anyOneStandby : .off, synchronousModeStrict: synchronousModeStrict,
                signedRequests: !unsignedRequests, transportSecurity: !plaintext, notifierArguments: notifier.arguments
            )
            let state = try await runner.up(report: say)
            say("")
            say("OrderCell cluster is up: \(cells) cells")
            for url in state.proxyURLs { say("  proxy          \(url)   (same public API as ordercell dev)") }
            say("  control plane  \(state.controlURL)")
            say("  state          \(state.directory)/cluster.json, logs in \(state.directory)/logs")
            if let caFile = state.caFile {
                say("TLS on every hop, with the cluster's own CA: trust it to call the cluster, e.g.")
                say("  export ORDERCELL_TLS_CA=\(caFile)        (ordercell admin …)")
                say("  curl --cacert \(caFile) \(state.proxyURLs.first ?? "")/healthz")
            } else {
                say("WARNING: every hop is plaintext (--plaintext): anyone on this machine can read and forge its traffic.")
            }
            if unsignedRequests {
                say("WARNING: the proxies take unsigned requests: anyone who reaches them may act for any merchant (--unsigned-requests).")
            } else {
                say("The proxies take only signed requests (docs/security.md). Make a merchant's key and the payment service's:")
                say("  ordercell admin merchant key create m1 --reason onboarding --control \(state.controlURL) --admin-token …")
                say("  ordercell admin payment-service key create --reason payments --control \(state.controlURL) --admin-token …")
            }
            say("Stop it with: ordercell cluster down --dir \(options.dir)")
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop every process and server of the cluster (the data stays).")
        @OptionGroup var options: Options

        func run() async throws {
            try await LocalClusterRunner(directory: options.dir, cells: 1, basePort: 0, adminToken: "", executable: "").down(report: say)
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show what runs where.")
        @OptionGroup var options: Options

        func run() async throws {
            for line in try LocalClusterRunner.status(in: options.dir) { say(line) }
        }
    }
}

/// The token a follower (cell service, proxy) shows the control plane to read the routing table.
/// This process's TLS, chosen explicitly: its certificate (its identity,
/// shown on its listeners and, on the cell protocol, to the cell services it
/// calls), the CA it trusts for its peers, and whether the cell protocol
/// uses them (`require`, the default; `disable` on loopback development
/// clusters only). Servers with an HTTP listener add `--http-tls`.
struct TLSOptions: ParsableArguments {
    @Option(help: "TLS of the cell protocol: require (mutual TLS) or disable (loopback development only).") var cellTLS = "require"
    @Option(help: "PEM certificate chain of this process: served on its listeners and shown to the cell services it calls (mutual TLS).")
    var tlsCertificate: String?
    @Option(help: "PEM private key of --tls-certificate.") var tlsKey: String?
    @Option(help: "PEM CAs this process trusts for its peers: the cell services and the control plane it calls, the callers of the cell protocol it serves (default: the system's; $ORDERCELL_TLS_CA).")
    var tlsCA = ProcessInfo.processInfo.environment["ORDERCELL_TLS_CA"]
    @Option(help: "PEM certificate chain of the HTTP listener, when it is not --tls-certificate (a publicly trusted one for the public API, say).")
    var httpTLSCertificate: String?
    @Option(help: "PEM private key of --http-tls-certificate.") var httpTLSKey: String?

    private var cellRequired: Bool {
        get throws {
            switch cellTLS {
            case "require": return true
            case "disable": return false
            default: throw ValidationError("--cell-tls must be require or disable")
            }
        }
    }

    private func files(_ purpose: String) throws -> (certificate: String, key: String) {
        guard let tlsCertificate, let tlsKey else {
            throw ValidationError("\(purpose) needs --tls-certificate and --tls-key")
        }
        return (tlsCertificate, tlsKey)
    }

    /// A cell service's side: mutual TLS, its callers' certificates checked against --tls-ca.
    func cellServerTLS() throws -> CellServerTLS {
        guard try cellRequired else { return .disabled }
        let (certificate, key) = try files("--cell-tls require (or --cell-tls disable on loopback)")
        guard let tlsCA else {
            throw ValidationError("--cell-tls require needs --tls-ca: the CA of the certificates its callers show (mutual TLS)")
        }
        do {
            return try .required(certificateFile: certificate, privateKeyFile: key, clientCAFile: tlsCA)
        } catch {
            throw ValidationError("the TLS files cannot be used: \(error)")
        }
    }

    /// A proxy's, the control plane's or a tool's side of the cell protocol:
    /// mutual TLS, so its certificate (its identity) is required.
    func cellClientTLS() throws -> CellClientTLS {
        guard try cellRequired else { return .disabled }
        guard tlsCertificate != nil, tlsKey != nil else {
            throw ValidationError(
                "--cell-tls require needs --tls-certificate and --tls-key: the cell services take only callers with a certificate naming their role (docs/security.md)"
            )
        }
        do {
            return try .required(trustRootsFile: tlsCA, certificateFile: tlsCertificate, privateKeyFile: tlsKey)
        } catch {
            throw ValidationError("the TLS files cannot be used: \(error)")
        }
    }

    /// The client of the control plane: an `https://` URL's certificate checked against --tls-ca.
    func controlHTTP(_ url: String, logger: Logger) throws -> HTTPClient {
        guard url.lowercased().hasPrefix("https://") else {
            if let host = URL(string: url)?.host, !isLoopback(host) {
                logger.warning("the control plane at \(url) is called in plaintext: the follower token and the routing table cross the network readable")
            }
            return .shared
        }
        do {
            return try TrustedHTTPClients.trusting(caFile: tlsCA)
        } catch {
            throw ValidationError("--tls-ca cannot be used: \(error)")
        }
    }

    /// An HTTP listener's TLS: `require` (the default) or `disable` (warned off loopback).
    func httpServerTLS(_ mode: String, host: String, logger: Logger) throws -> HTTPServerTLS {
        switch mode {
        case "disable":
            if !isLoopback(host) {
                logger.warning("--http-tls disable on \(host): requests, bearer tokens and new keys' secrets cross the network in plaintext; only behind a load balancer that terminates TLS on a network only it reaches")
            }
            return .disabled
        case "require":
            guard (httpTLSCertificate == nil) == (httpTLSKey == nil) else {
                throw ValidationError("--http-tls-certificate and --http-tls-key go together")
            }
            let (certificate, key) = try httpTLSCertificate.map { ($0, httpTLSKey!) }
                ?? files("--http-tls require (or --http-tls disable on loopback or behind a load balancer that terminates TLS)")
            do {
                return try .required(certificateFile: certificate, privateKeyFile: key)
            } catch {
                throw ValidationError("the TLS files cannot be used: \(error)")
            }
        default: throw ValidationError("--http-tls must be require or disable")
        }
    }
}

/// Whether `host` is this machine's loopback.
func isLoopback(_ host: String) -> Bool {
    if ["::1", "localhost", "[::1]"].contains(host) { return true }
    // 127.0.0.0/8 as an address, not any name that starts with "127.".
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
}

struct ControlTokenOption: ParsableArguments {
    @Option(help: "Token for reading the routing table from the control plane, a viewer or operator token there (default: $ORDERCELL_CONTROL_TOKEN).")
    var controlToken: String?
    @Option(help: "A file holding that token: keeps it off the command line, where ps shows it.") var controlTokenFile: String?

    var resolved: String? {
        get throws {
            if let controlToken { return controlToken }
            if let controlTokenFile { return try SecretFile.read(controlTokenFile) }
            return ProcessInfo.processInfo.environment["ORDERCELL_CONTROL_TOKEN"]
        }
    }
}

/// A secret read from a file (a token, a password): the whole file, its surrounding blanks trimmed.
enum SecretFile {
    static func read(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw ValidationError("\(path) is empty") }
        return text
    }
}

/// Operator tokens of a server: the admin (operator) token, a viewer token, and named tokens.
struct OperatorTokenOptions: ParsableArguments {
    @Option(help: "Bearer token of the operator role, recorded as 'admin' (default: $ORDERCELL_ADMIN_TOKEN; none: the operator API is off).")
    var adminToken: String?
    @Option(help: "Bearer token of the viewer role (read-only), recorded as 'viewer' (default: $ORDERCELL_VIEWER_TOKEN).")
    var viewerToken: String?
    @Option(name: .customLong("token"), help: "A named token, name:role:secret with role viewer or operator (repeatable).")
    var namedTokens: [String] = []
    @Option(help: "A file of named tokens, name:role:secret a line (# comments): keeps them off the command line, where ps shows them.")
    var tokenFile: String?
    @Flag(help: "Accept ordercell dev's well-known token (dev-admin-token) as an operator's: a loopback cluster for trying things only.")
    var allowDevTokens = false

    func operatorTokens() throws -> OperatorTokens {
        let environment = ProcessInfo.processInfo.environment
        let admin = adminToken ?? environment["ORDERCELL_ADMIN_TOKEN"]
        var tokens = OperatorTokens(adminToken: admin, viewerToken: viewerToken ?? environment["ORDERCELL_VIEWER_TOKEN"])
        for text in namedTokens { tokens.tokens.append(try OperatorToken(parsing: text)) }
        if let tokenFile {
            for line in try SecretFile.read(tokenFile).split(separator: "\n") {
                let text = line.trimmingCharacters(in: .whitespaces)
                if text.isEmpty || text.hasPrefix("#") { continue }
                tokens.tokens.append(try OperatorToken(parsing: text))
            }
        }
        if !allowDevTokens {
            do { try tokens.refusingDevelopmentTokens() } catch { throw ValidationError(error.detail) }
        }
        return tokens
    }
}
