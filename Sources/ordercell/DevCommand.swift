import ArgumentParser
import Foundation
import Logging
import CellRouting
import OrderCellEmbedded

/// `ordercell dev`: the whole system in one process, on SQLite files.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run the whole system embedded: 4 cells in 2 partitions on SQLite files, one proxy, the HTTP API."
    )

    @Option(name: .long, help: "Directory for the cells' SQLite files; it survives restarts.")
    var dataDir: String = ".ordercell/dev"

    @Option(name: .long, help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "Port to listen on (0 picks a free one).")
    var port: Int = 8080

    @Option(name: .long, help: "Bearer token of the /admin endpoints (default: $ORDERCELL_ADMIN_TOKEN, else 'dev-admin-token').")
    var adminToken: String?

    @Option(name: .long, help: "Bearer token of the viewer role: read-only operator endpoints (default: $ORDERCELL_VIEWER_TOKEN).")
    var viewerToken: String?

    @Flag(name: .long, help: "Run no health checker.")
    var noHealthCheck = false

    @Flag(name: .long, help: "Take only signed requests on the public API (docs/security.md); prints a ready key of merchant m1 and of the payment service.")
    var auth = false

    @OptionGroup var executor: EmbeddedExecutorTakeoverOption
    @OptionGroup var notifier: NotifierOptions

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "notice"

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let token = adminToken ?? ProcessInfo.processInfo.environment["ORDERCELL_ADMIN_TOKEN"] ?? "dev-admin-token"
        let viewer = viewerToken ?? ProcessInfo.processInfo.environment["ORDERCELL_VIEWER_TOKEN"]
        let configuration = EmbeddedConfiguration(
            dataDirectory: dataDir, host: host, port: port, adminToken: token, viewerToken: viewer,
            healthCheck: noHealthCheck ? nil : HealthCheckPolicy(), requireSignedRequests: auth, notifier: try notifier.configuration()
        )
        let system = try await EmbeddedSystem.open(configuration)
        let credentials = auth ? try await DevCredentials.loadOrMake(in: system, now: EmbeddedSystem.systemClock()) : nil
        let host = self.host
        let dataDir = self.dataDir
        try await system.run { port in
            var text = Walkthrough.text(host: host, port: port, dataDirectory: dataDir, adminToken: token) + "\n"
            if let credentials {
                text += "\n" + Walkthrough.signed(credentials, host: host, port: port, dataDirectory: dataDir) + "\n"
            } else {
                FileHandle.standardError.write(Data((Walkthrough.unauthenticatedWarning + "\n").utf8))
            }
            if !isLoopback(host) {
                let warning = "WARNING: --host \(host): ordercell dev speaks plaintext HTTP, and its operator API takes well-known dev tokens; anyone who reaches it on the network sees and does everything. Use the cluster (TLS on every hop) beyond this machine."
                FileHandle.standardError.write(Data((warning + "\n").utf8))
            }
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}

/// The copy-paste walkthrough `ordercell dev` prints once it listens.
enum Walkthrough {
    static let unauthenticatedWarning = """
        WARNING: callers of the public API are NOT authenticated: anyone who reaches this port may create, read, pay and refund \
        any merchant's orders. That is for trying OrderCell on loopback only. Start with --auth to take only signed requests \
        (docs/security.md); cluster mode always does.
        """

    /// What `--auth` adds: the ready keys, and the walkthrough's calls signed.
    static func signed(_ credentials: DevCredentials, host: String, port: Int, dataDirectory: String) -> String {
        let base = "http://\(host):\(port)"
        return """
            Signed requests only (--auth). Ready keys, kept in \(dataDirectory)/dev-credentials.json:
              merchant \(credentials.merchantID):   ORDERCELL_KEY_ID=\(credentials.merchantKeyID) ORDERCELL_SECRET=\(credentials.merchantSecret)
              payment service: ORDERCELL_KEY_ID=\(credentials.paymentServiceKeyID) ORDERCELL_SECRET=\(credentials.paymentServiceSecret)
            Sign each call with `ordercell sign` (it reads the two variables):
              export ORDERCELL_KEY_ID=\(credentials.merchantKeyID) ORDERCELL_SECRET=\(credentials.merchantSecret)
              BODY='{"merchant_id":"m1","out_trade_no":"signed-1","amount":1999,"currency":"CNY"}'
              curl -s -X POST \(base)/v1/orders -H 'content-type: application/json' -d "$BODY" \\
                -H "authorization: $(ordercell sign POST /v1/orders "$BODY")"
              # only the payment service may pay:
              export ORDERCELL_KEY_ID=\(credentials.paymentServiceKeyID) ORDERCELL_SECRET=\(credentials.paymentServiceSecret)
              PAY='{"payment_id":"pay-1","amount":1999}'
              curl -s -X POST \(base)/v1/orders/$ORDER/pay -d "$PAY" -H "authorization: $(ordercell sign POST /v1/orders/$ORDER/pay "$PAY")"
            """
    }

    static func text(host: String, port: Int, dataDirectory: String, adminToken: String) -> String {
        let base = "http://\(host):\(port)"
        return """
            OrderCell is running embedded on \(base)
              plaintext HTTP, for this machine only: cluster mode speaks TLS on every hop (docs/security.md)
              cells 1-2 in partition normal (default), cells 3-4 in partition vip (merchant vip-merchant)
              data: \(dataDirectory)/cells/cell-000N.sqlite   (stop with Ctrl-C; restart keeps every order)

            Try it:
              # create an order (a repeat of the same request returns the same order, whichever cell it is in)
              curl -s -X POST \(base)/v1/orders -H 'content-type: application/json' \\
                -d '{"merchant_id":"m1","out_trade_no":"demo-1","amount":1999,"currency":"CNY","description":"tea"}'
              ORDER=$(curl -s -X POST \(base)/v1/orders -H 'content-type: application/json' \\
                -d '{"merchant_id":"m1","out_trade_no":"demo-1","amount":1999,"currency":"CNY","description":"tea"}' \\
                | sed -E 's/.*"order_id":"([0-9]+)".*/\\1/')
              curl -s \(base)/v1/orders/$ORDER
              curl -s -X POST \(base)/v1/orders/$ORDER/pay -H 'content-type: application/json' \\
                -d '{"payment_id":"pay-1","amount":1999}'
              curl -s -X POST \(base)/v1/orders/$ORDER/refunds -H 'content-type: application/json' \\
                -d '{"refund_id":"r-1","amount":500,"reason":"one cup short"}'
              curl -s \(base)/v1/orders/$ORDER/events
              curl -s '\(base)/v1/orders?merchant_id=m1&out_trade_no=demo-1'    # by the merchant's own number

            Drills (operator endpoints, token \(adminToken)):
              curl -s \(base)/admin/cells -H 'authorization: Bearer \(adminToken)'
              curl -s -X PUT \(base)/admin/cells/1/fault -H 'authorization: Bearer \(adminToken)' \\
                -H 'content-type: application/json' -d '{"mode":"fail"}'     # creates now go to cell 2
              curl -s -X DELETE \(base)/admin/cells/1/fault -H 'authorization: Bearer \(adminToken)'
              (the health checker marks a failing cell down after 3 failed probes, and up again after 2 good ones)

            Control plane (releases with audit and rollback; control database \(dataDirectory)/control.sqlite):
              ordercell admin cells --control \(base)/control --admin-token \(adminToken)
              ordercell admin cell set 2 --weight 0 --reason "drain cell 2" --control \(base)/control --admin-token \(adminToken)
              ordercell admin releases --control \(base)/control --admin-token \(adminToken)
              ordercell admin rollback 1 --reason "undo the drain" --control \(base)/control --admin-token \(adminToken)
            """
    }
}
