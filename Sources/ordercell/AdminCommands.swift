import ArgumentParser
import AsyncHTTPClient
import CellRouting
import ControlPlane
import Foundation
import OrderCellCluster
import OrderCellPlatform
import OrderModel
import OrderProxy

/// `ordercell admin`: the operator's command line over the control plane's admin API.
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "Operator commands against the control plane (embedded: http://HOST:PORT/control).",
        subcommands: [
            Cells.self, CellAdmin.self, Partitions.self, PartitionAdmin.self, MerchantAdmin.self, Config.self, Releases.self, Release.self,
            Rollback.self, IndexSlotsAdmin.self, PaymentServiceAdmin.self, Feed.self, NotificationsAdmin.self,
        ]
    )

    struct Connection: ParsableArguments {
        @Option(help: "URL of the control plane (default: $ORDERCELL_CONTROL_URL, else the embedded one at http://127.0.0.1:8080/control).")
        var control = ProcessInfo.processInfo.environment["ORDERCELL_CONTROL_URL"] ?? "http://127.0.0.1:8080/control"
        @Option(name: .customLong("admin-token"), help: "Bearer token (default: $ORDERCELL_ADMIN_TOKEN, else 'dev-admin-token').")
        var token = ProcessInfo.processInfo.environment["ORDERCELL_ADMIN_TOKEN"] ?? "dev-admin-token"

        @Option(help: "PEM CAs an https:// control plane's certificate must chain to (default: $ORDERCELL_TLS_CA, else the system's).")
        var tlsCA = ProcessInfo.processInfo.environment["ORDERCELL_TLS_CA"]

        var client: ControlAdminClient {
            get throws {
                let http = control.lowercased().hasPrefix("https://") ? try TrustedHTTPClients.trusting(caFile: tlsCA) : .shared
                return ControlAdminClient(controlURL: control, token: token, http: http)
            }
        }
    }

    /// What every change carries: why, and the version it was made against.
    struct Change: ParsableArguments {
        @Option(help: "Why the change is made (recorded in the audit log).") var reason: String
        @Option(help: "Refuse the change unless this routing version is current.") var expectedVersion: UInt64?

        var request: ReasonRequest { ReasonRequest(reason: reason, expectedVersion: expectedVersion) }
    }

    /// Prints an answer as the admin API sent it: JSON, indented, keys sorted.
    static func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        say(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    static func printChange(_ result: ChangeResultView) {
        say("published routing release \(result.version) by \(result.author)")
        for change in result.changes { say("  \(change)") }
        if result.changes.isEmpty { say("  (nothing changed)") }
    }

    /// A cell number from the command line, refused before anything is sent when out of range.
    static func cellID(_ number: Int) throws -> CellID {
        guard let cell = CellID(number) else { throw ValidationError("a cell number is 0...\(CellID.maximum), got \(number)") }
        return cell
    }

    struct Cells: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the cells: partition, state, weight, version, blacklist, health.")
        @OptionGroup var connection: Connection
        func run() async throws { try printJSON(try await connection.client.cells()) }
    }

    struct Partitions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the partitions, their cells and the merchant rules.")
        @OptionGroup var connection: Connection
        func run() async throws { try printJSON(try await connection.client.partitions()) }
    }

    struct Releases: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The audit log: the newest routing releases, who made them and why.")
        @OptionGroup var connection: Connection
        @Option(help: "How many releases.") var limit = 20
        func run() async throws {
            for release in try await connection.client.releases(limit: limit).releases {
                let rolledBack = release.rolledBackTo.map { " (rollback to \($0))" } ?? ""
                say("\(release.version)  \(release.createdAt)  \(release.author)\(rolledBack)  \(release.reason)")
            }
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one release and what it changed from the one before.")
        @OptionGroup var connection: Connection
        @Argument(help: "The release (routing version).") var version: UInt64
        @Flag(help: "Print the whole routing document too.") var full = false
        func run() async throws {
            let release = try await connection.client.release(version)
            say("release \(version) by \(release.author) at \(release.createdAt): \(release.reason)")
            for change in release.changes { say("  \(change)") }
            if full { try printJSON(release.routing) }
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Publish an earlier release's routing and config again, as the next release.")
        @OptionGroup var connection: Connection
        @Argument(help: "The release to return to.") var version: UInt64
        @OptionGroup var change: Change
        func run() async throws {
            printChange(try await connection.client.rollback(to: version, change.request))
        }
    }

    struct CellAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cell", abstract: "Add or change one cell, or call one of its cell services directly.",
            subcommands: [AddCell.self, SetCell.self, Blacklist.self, Unblacklist.self, Failover.self, Switchover.self, Call.self]
        )
    }

    struct AddCell: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a cell to the routing.")
        @OptionGroup var connection: Connection
        @Argument(help: "The cell number.") var cell: Int
        @Option(help: "Its partition.") var partition: String
        @Option(help: "Its weight, 0...1000.") var weight = 100
        @Option(help: "Its state.") var state = "ACTIVE"
        @Option(help: "Address host:port of one of its cell services (repeatable).") var endpoint: [String] = []
        @Option(help: "Its PostgreSQL primary, postgres://user@host:port/database.") var primary: String?
        @Option(help: "One of its PostgreSQL replicas (repeatable).") var replica: [String] = []
        @Option(help: "The software release it runs.") var versionLabel: String?
        @OptionGroup var change: Change
        func run() async throws {
            func server(_ url: String, _ flag: String) throws -> PostgresEndpoint {
                do { return try PostgresEndpoint(parsing: url) } catch { throw ValidationError("\(flag): \(error.detail)") }
            }
            let storage = try primary.map { CellStorageRoute(primary: try server($0, "--primary"), replicas: try replica.map { try server($0, "--replica") }) }
            let request = AddCellRequest(
                cellID: cell, partition: partition, state: state, weight: weight, endpoints: endpoint,
                storage: storage, versionLabel: versionLabel,
                reason: change.reason, expectedVersion: change.expectedVersion
            )
            printChange(try await connection.client.addCell(request))
        }
    }

    struct SetCell: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Change a cell's weight, state, partition or version label.")
        @OptionGroup var connection: Connection
        @Argument(help: "The cell number.") var cell: Int
        @Option(help: "Weight, 0...1000 (ramps traffic up or down).") var weight: Int?
        @Option(help: "State: ACTIVE, SEALED, COOLING, COLD, RETIRED.") var state: String?
        @Option(help: "Partition.") var partition: String?
        @Option(help: "Software release label.") var versionLabel: String?
        @OptionGroup var change: Change
        func run() async throws {
            let request = CellPatchRequest(
                partition: partition, state: state, weight: weight, versionLabel: versionLabel, reason: change.reason,
                expectedVersion: change.expectedVersion
            )
            printChange(try await connection.client.updateCell(try cellID(cell), request))
        }
    }

    struct Blacklist: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Keep a cell out of new-order placement.")
        @OptionGroup var connection: Connection
        @Argument(help: "The cell number.") var cell: Int
        @Option(help: "Lift the blacklist by itself after this many seconds.") var expiresIn: Int64?
        @OptionGroup var change: Change
        func run() async throws {
            let request = BlacklistRequest(reason: change.reason, expiresInSeconds: expiresIn, expectedVersion: change.expectedVersion)
            printChange(try await connection.client.blacklist(try cellID(cell), request))
        }
    }

    struct Unblacklist: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a blacklisted cell take new orders again.")
        @OptionGroup var connection: Connection
        @Argument(help: "The cell number.") var cell: Int
        @OptionGroup var change: Change
        func run() async throws {
            printChange(try await connection.client.unblacklist(try cellID(cell), change.request))
        }
    }

    struct IndexSlotsAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "index-slots", abstract: "The merchant-key index's slots (docs/merchant-keys.md).", subcommands: [MoveIndexSlots.self]
        )
    }

    struct MoveIndexSlots: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "move",
            abstract: "Move index slots FIRST...LAST to a cell, online: freeze, copy, re-point, drop. Run it again to resume a failed move."
        )
        @OptionGroup var connection: Connection
        @Argument(help: "The slots, as FIRST...LAST or one slot (0...255).") var slots: String
        @Option(help: "The cell that is to hold them.") var to: Int
        @OptionGroup var change: Change

        func run() async throws {
            let bounds = slots.components(separatedBy: "...")
            guard (1...2).contains(bounds.count), let first = Int(bounds[0]), let last = Int(bounds[bounds.count - 1]) else {
                throw ValidationError("slots are FIRST...LAST or one slot, got '\(slots)'")
            }
            let moved = try await connection.client.moveIndexSlots(
                IndexSlotMoveRequest(first: first, last: last, to: Int(try cellID(to).rawValue), reason: change.reason, expectedVersion: change.expectedVersion)
            )
            if moved.from.isEmpty {
                say("index slots \(first)...\(last) are in cell \(to) already; routing version \(moved.version)")
            } else {
                say("index slots \(first)...\(last) moved from cells \(moved.from.map(String.init).joined(separator: ", ")) to cell \(to): \(moved.copied) entries copied, \(moved.dropped) dropped; routing version \(moved.version)")
                if !moved.leftBehind.isEmpty {
                    say("  entries left behind in cells \(moved.leftBehind.map(String.init).joined(separator: ", ")) (frozen there, never read)")
                }
            }
        }
    }

    struct Failover: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Force a failover of the cell's PostgreSQL primary to its synchronous standby (cluster, by Patroni), then move the cell's services to it."
        )
        @OptionGroup var connection: Connection
        @Argument(help: "The cell number.") var cell: Int
        func run() async throws {
            let started = ContinuousClock.now
            let result = try await connection.client.failover(try cellID(cell))
            say("cell \(cell) failed over: \(Self.primary(of: cell, in: result)); routing version \(result.version); \(Self.took(since: started))")
        }

        static func primary(of cell: Int, in result: ChangeResultView) -> String {
            let storage = result.routing.cells.values.first { Int($0.id.rawValue) == cell }?.storage
            return "primary is now \(storage.map { "\($0.primary.host):\($0.primary.port)" } ?? "?")"
        }

        static func took(since started: ContinuousClock.Instant) -> String {
            let elapsed = ContinuousClock.now - started
            return String(format: "took %.1f s", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
    }

    struct Switchover: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hand the cell's PostgreSQL primary over to its synchronous standby, planned (cluster, by Patroni): writes pause, nothing acknowledged is lost."
        )
        @OptionGroup var connection: Connection
        @Argument(help: "The cell number.") var cell: Int
        func run() async throws {
            let started = ContinuousClock.now
            let result = try await connection.client.switchover(try cellID(cell))
            say("cell \(cell) switched over: \(Failover.primary(of: cell, in: result)); routing version \(result.version); \(Failover.took(since: started))")
        }
    }

    /// One call to one cell service over the cell protocol, without a proxy:
    /// what an operator needs to see a cell's own answer (is it the proxy or
    /// the cell?) with the one protocol the system speaks.
    struct Call: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Call a cell service over the cell protocol and print its answer: an order, its refunds or events, the cell's event feed, or the drill fault."
        )
        @Argument(help: "The cell service, host:port (as in the routing table).") var endpoint: String
        @Argument(help: "order, refunds, events (each takes an order id), feed (takes a position, default the start) or fault.") var method: String
        @Argument(help: "The order id (feed: the position to read after, transaction.event).") var orderID: String?
        @Option(help: "feed: events at most, 1...1000.") var limit = 100
        @Flag(help: "Read the order from a replica (consistency=eventual).") var eventual = false
        @Option(help: "How long the call may take, in seconds.") var timeout: Double = 5
        @OptionGroup var tls: TLSOptions

        func run() async throws {
            let target: CellServiceEndpoint
            do { target = try CellServiceEndpoint(parsing: endpoint) } catch { throw ValidationError("endpoint: \(error.detail)") }
            func id() throws -> OrderID {
                guard let text = orderID else { throw ValidationError("\(method) takes an order id") }
                do { return try OrderID(parsing: text) } catch { throw ValidationError("order id: \(error)") }
            }
            let client = CellServiceClient(
                cell: cellAnswering(method), endpoints: [target], tls: try tls.cellClientTLS(), timeout: .milliseconds(Int64(timeout * 1000))
            )
            defer { client.shutdown() }
            switch method {
            case "order": say(OrderAPIJSON.order(try await client.order(try id(), consistency: eventual ? .eventual : .strong)))
            case "refunds": say(try OrderAPIJSON.refunds(try await client.refunds(of: try id())))
            case "events": let order = try id(); say(try OrderAPIJSON.events(try await client.events(of: order), of: order))
            case "fault": say("\(try await client.fault())")
            case "feed":
                guard let position = orderID.map({ EventFeedPosition($0) }) ?? .start else {
                    throw ValidationError("a feed position is transaction.event, as the feed prints it")
                }
                // One JSON object a line: what a script reading the feed by hand wants.
                for item in try await client.eventFeed(after: position, limit: limit) {
                    say(try OrderAPIJSON.feedLine(item))
                }
            default: throw ValidationError("method must be order, refunds, events, feed or fault, got '\(method)'")
            }
        }

        /// The cell the client is for: the order id's, or any for the fault and the feed (a service answers for its own cell).
        private func cellAnswering(_ method: String) -> CellID {
            guard method != "fault", method != "feed", let text = orderID, let id = try? OrderID(parsing: text) else { return CellID(unchecked: 0) }
            return id.cell
        }
    }

    struct PartitionAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "partition", abstract: "Add or change a partition.", subcommands: [SetPartition.self])
    }

    struct SetPartition: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Add or change a partition: its kind and spill-over.")
        @OptionGroup var connection: Connection
        @Argument(help: "The partition name.") var name: String
        @Option(help: "vip, normal, canary or cold.") var kind: String
        @Option(help: "Partition new orders spill to when this one has no healthy cell (default: fail).") var spillTo: String?
        @OptionGroup var change: Change
        func run() async throws {
            let request = PartitionRequest(kind: kind, spillTo: spillTo, reason: change.reason, expectedVersion: change.expectedVersion)
            printChange(try await connection.client.setPartition(name, request))
        }
    }

    struct MerchantAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "merchant", abstract: "Pin merchants to partitions; manage their access keys and notify endpoints.",
            subcommands: [Pin.self, Unpin.self, MerchantKey.self, MerchantNotify.self]
        )
    }

    // MARK: Access keys

    /// Prints a key made (created or rotated): its secret once, with what to do with it.
    static func printIssued(_ issued: AccessKeyIssuedView) {
        say("published routing release \(issued.version) by \(issued.author)")
        say("access key \(issued.key.keyID) (\(issued.key.role)\(issued.key.merchantID.map { " of merchant \($0)" } ?? ""))")
        say("secret: \(issued.secret)")
        say("  shown this once and stored nowhere in the clear: keep it where the caller's secrets are kept (docs/security.md)")
        if let old = issued.replaces { say("  replaces \(old.keyID), accepted until \(old.expiresAt ?? "revoked")") }
    }

    struct MerchantKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "key", abstract: "A merchant's access keys: create, list, rotate, revoke.",
            subcommands: [CreateMerchantKey.self, ListKeys.self, RotateKey.self, RevokeKey.self]
        )
    }

    struct CreateMerchantKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Make an access key for a merchant; prints its secret once.")
        @OptionGroup var connection: Connection
        @Argument(help: "The merchant id.") var merchant: String
        @OptionGroup var change: Change
        func run() async throws {
            printIssued(
                try await connection.client.createAccessKey(
                    AccessKeyCreateRequest(role: "merchant", merchantID: merchant, reason: change.reason, expectedVersion: change.expectedVersion)
                )
            )
        }
    }

    struct ListKeys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List access keys (never their secrets).")
        @OptionGroup var connection: Connection
        @Argument(help: "Only this merchant's keys.") var merchant: String?
        func run() async throws { try printJSON(try await connection.client.accessKeys(merchant: merchant)) }
    }

    struct RotateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate", abstract: "Make a successor of a key; the old key stays accepted for the overlap, then expires."
        )
        @OptionGroup var connection: Connection
        @Argument(help: "The key id, ock_….") var keyID: String
        @Option(help: "How long the old key stays accepted beside the new one, in seconds (default a day, at most 30 days).")
        var overlapSeconds: Int64 = 86_400
        @OptionGroup var change: Change
        func run() async throws {
            printIssued(
                try await connection.client.rotateAccessKey(
                    keyID, AccessKeyRotateRequest(overlapSeconds: overlapSeconds, reason: change.reason, expectedVersion: change.expectedVersion)
                )
            )
        }
    }

    struct RevokeKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Stop accepting a key at once.")
        @OptionGroup var connection: Connection
        @Argument(help: "The key id, ock_….") var keyID: String
        @OptionGroup var change: Change
        func run() async throws {
            let revoked = try await connection.client.revokeAccessKey(keyID, change.request)
            say("published routing release \(revoked.version) by \(revoked.author): access key \(revoked.key.keyID) \(revoked.key.standing)")
        }
    }

    struct PaymentServiceAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "payment-service", abstract: "The payment service's access keys (the only caller that may pay).",
            subcommands: [PaymentServiceKey.self]
        )
    }

    struct PaymentServiceKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "key", abstract: "The payment service's access keys: create, list, rotate, revoke.",
            subcommands: [CreatePaymentServiceKey.self, ListKeys.self, RotateKey.self, RevokeKey.self]
        )
    }

    struct CreatePaymentServiceKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Make an access key for the payment service; prints its secret once.")
        @OptionGroup var connection: Connection
        @OptionGroup var change: Change
        func run() async throws {
            printIssued(
                try await connection.client.createAccessKey(
                    AccessKeyCreateRequest(role: "payment_service", reason: change.reason, expectedVersion: change.expectedVersion)
                )
            )
        }
    }

    struct Pin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a merchant's new orders to a partition.")
        @OptionGroup var connection: Connection
        @Argument(help: "The merchant id.") var merchant: String
        @Argument(help: "The partition.") var partition: String
        @OptionGroup var change: Change
        func run() async throws {
            let request = MerchantPartitionRequest(partition: partition, reason: change.reason, expectedVersion: change.expectedVersion)
            printChange(try await connection.client.pinMerchant(merchant, request))
        }
    }

    struct Unpin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a merchant's new orders to the default partition again.")
        @OptionGroup var connection: Connection
        @Argument(help: "The merchant id.") var merchant: String
        @OptionGroup var change: Change
        func run() async throws {
            printChange(try await connection.client.unpinMerchant(merchant, change.request))
        }
    }

    struct Config: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or change the dynamic config: canary, rate limits, degradation switches, retry limit, flags.",
            subcommands: [ShowConfig.self, SetConfig.self]
        )
    }

    struct ShowConfig: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Print the current config.")
        @OptionGroup var connection: Connection
        func run() async throws { try printJSON(try await connection.client.config()) }
    }

    struct SetConfig: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set", abstract: "Change parts of the config; what is not given stays as it is."
        )
        @OptionGroup var connection: Connection
        @Option(help: "Canary partition (\"none\" removes the canary).") var canaryPartition: String?
        @Option(help: "Share of new orders for the canary, 0...100.") var canaryPercent: Double?
        @Option(help: "A merchant whose orders all go to the canary (repeatable; replaces the list).") var canaryMerchant: [String] = []
        @Option(help: "Creates per second per proxy, all merchants (0 removes the limit).") var globalRate: Double?
        @Option(help: "Creates per second per proxy and merchant (0 removes the limit).") var merchantRate: Double?
        @Option(help: "A merchant's own limit, merchant=rate (repeatable; rate 0 removes it).") var merchantLimit: [String] = []
        @Option(help: "Seconds of the rate a full bucket holds.") var burstSeconds: Double?
        @Option(help: "Refuse eventual reads: true or false.") var refuseEventualReads: Bool?
        @Option(help: "Refuse refunds: true or false.") var refuseRefunds: Bool?
        @Option(help: "Refuse creates in this partition (repeatable; replaces the list; \"none\" empties it).") var refuseCreatesIn: [String] = []
        @Option(help: "Cells one create may try, 1...16.") var maxCreateAttempts: Int?
        @Option(help: "A feature flag, name=true|false (repeatable).") var flag: [String] = []
        @OptionGroup var change: Change

        func run() async throws {
            let client = try connection.client
            let current = try await client.config()
            var policy = current.policy
            if let canaryPartition {
                policy.canary = canaryPartition == "none" ? nil : CanaryRule(
                    partition: PartitionName(canaryPartition), percent: policy.canary?.percent ?? 0, merchants: policy.canary?.merchants ?? []
                )
            }
            if canaryPercent != nil || !canaryMerchant.isEmpty {
                guard var canary = policy.canary else { throw ValidationError("set --canary-partition first") }
                if let canaryPercent { canary.percent = canaryPercent }
                if !canaryMerchant.isEmpty { canary.merchants = canaryMerchant }
                policy.canary = canary
            }
            if let globalRate { policy.rateLimits.globalCreatesPerSecond = globalRate == 0 ? nil : globalRate }
            if let merchantRate { policy.rateLimits.merchantCreatesPerSecond = merchantRate == 0 ? nil : merchantRate }
            for entry in merchantLimit {
                let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, let rate = Double(parts[1]) else { throw ValidationError("--merchant-limit is merchant=rate") }
                policy.rateLimits.merchantOverrides[parts[0]] = rate == 0 ? nil : rate
            }
            if let burstSeconds { policy.rateLimits.burstSeconds = burstSeconds }
            if let refuseEventualReads { policy.degradation.refuseEventualReads = refuseEventualReads }
            if let refuseRefunds { policy.degradation.refuseRefunds = refuseRefunds }
            if !refuseCreatesIn.isEmpty {
                policy.degradation.refuseCreatesIn = refuseCreatesIn == ["none"] ? [] : refuseCreatesIn.map { PartitionName($0) }
            }
            if let maxCreateAttempts { policy.maximumCreateAttempts = maxCreateAttempts }
            for entry in flag {
                let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, let value = Bool(parts[1]) else { throw ValidationError("--flag is name=true|false") }
                policy.flags[parts[0]] = value
            }
            // Made against the version read, so a concurrent change is refused rather than overwritten.
            let request = ConfigRequest(policy: policy, reason: change.reason, expectedVersion: change.expectedVersion ?? current.routingVersion)
            printChange(try await client.setConfig(request))
        }
    }
}
