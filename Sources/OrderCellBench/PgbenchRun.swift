import Foundation
import LocalCluster

/// The raw INSERT of ``RawPostgresScenario`` run by pgbench, PostgreSQL's
/// own C client with prepared statements: what a user writing to the cell's
/// primary directly would get, without OrderCell or PostgresNIO in the way.
///
/// pgbench logs every transaction (`--log`); the run reads the log back and
/// keeps the transactions that ended after the warm-up, so its figures are
/// computed exactly like the other runs' (same histogram, same percentiles).
public struct PgbenchRun: Sendable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// libpq's `sslmode`: `require` or `disable`.
    public var sslMode: String
    public var clients: Int
    /// Transactions a second offered (open loop; pgbench then counts each latency from its scheduled start), nil: closed loop.
    public var rate: Double?
    public var warmup: Duration
    public var duration: Duration

    public init(
        host: String, port: Int, username: String, password: String?, database: String, sslMode: String, clients: Int, rate: Double? = nil,
        warmup: Duration, duration: Duration
    ) {
        self.rate = rate
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.sslMode = sslMode
        self.clients = clients
        self.warmup = warmup
        self.duration = duration
    }

    /// One row of `bench_raw_orders` per transaction, with a key no other run uses.
    static let script = """
        \\set n random(1, 9000000000000000000)
        \\set expires :now + 1800000
        INSERT INTO bench_raw_orders (order_id, merchant_id, out_trade_no, amount, currency, status, refunded_amount, \
        created_at, expires_at, updated_at, revision) VALUES ('pgb-' || :client_id || '-' || :n, 'bench', \
        'pgb-' || :client_id || '-' || :n, 100, 'CNY', 'CREATED', 0, :now, :expires, :now, 1);

        """

    public func run(name: String) async throws -> BenchReport {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-pgbench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let scriptPath = directory.appendingPathComponent("insert.sql").path
        try Data(Self.script.utf8).write(to: URL(fileURLWithPath: scriptPath))
        let seconds = Int((warmup + duration).components.seconds)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let started = Date().timeIntervalSince1970
        // The password goes in the environment, not on a command line that /proc shows.
        var environment: [String: String] = [:]
        if let password { environment["PGPASSWORD"] = password }
        var arguments = [
            Command.postgresTool("pgbench"), "--no-vacuum", "--protocol=prepared", "--client=\(clients)", "--jobs=\(min(clients, 2))",
            "--time=\(seconds)", "--define=now=\(now)", "--file=\(scriptPath)", "--log", "--log-prefix=\(directory.appendingPathComponent("tx").path)",
        ]
        if let rate { arguments.append("--rate=\(rate)") }
        arguments.append("host=\(host) port=\(port) user=\(username) dbname=\(database) sslmode=\(sslMode) application_name=ordercell-bench-pgbench")
        // pgbench checks its time only between transactions; one that never commits is bounded here.
        try await Command.run(arguments, environment: environment, timeLimit: warmup + duration + .seconds(30))
        let measuredFrom = started + Double(warmup.components.seconds)
        var stats = OperationStats()
        var first = Double.infinity
        var last = 0.0
        for file in try FileManager.default.contentsOfDirectory(atPath: directory.path) where file.hasPrefix("tx") {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(separator: "\n") {
                // client_id transaction_no latency_us script_no epoch_s epoch_us
                let fields = line.split(separator: " ")
                guard fields.count >= 6, let latency = UInt64(fields[2]), let epoch = Double(fields[4]), let micros = Double(fields[5]) else {
                    continue
                }
                let end = epoch + micros / 1_000_000
                guard end >= measuredFrom else { continue }
                first = min(first, end)
                last = max(last, end)
                stats.record(microseconds: latency)
            }
        }
        let measured = last > first ? last - first : Double(duration.components.seconds)
        return BenchReport(name: name, seconds: measured, operations: ["create": stats])
    }
}
