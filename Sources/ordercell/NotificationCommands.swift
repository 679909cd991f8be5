import ArgumentParser
import ControlPlane
import Foundation
import OrderModel

extension AdminCommand {
    // MARK: Merchants' notify endpoints (docs/events.md)

    struct MerchantNotify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "notify", abstract: "Where a merchant is notified of its orders' results: set, show, list, remove.",
            subcommands: [SetNotify.self, ShowNotify.self, ListNotify.self, RemoveNotify.self]
        )
    }

    struct SetNotify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set", abstract: "Set a merchant's notify URL; prints the signing secret when one is made (a first endpoint, or --rotate-secret)."
        )
        @OptionGroup var connection: Connection
        @Argument(help: "The merchant id.") var merchant: String
        @Argument(help: "The URL notifications are POSTed to (http or https).") var url: String
        @Flag(help: "Allow a loopback or private-network target (refused otherwise: no requests into the platform's own network).")
        var allowPrivateNetwork = false
        @Flag(help: "Make a new signing secret although the merchant has one.") var rotateSecret = false
        @OptionGroup var change: Change
        func run() async throws {
            let set = try await connection.client.setNotifyEndpoint(
                of: merchant,
                NotifyEndpointSetRequest(
                    url: url, allowPrivateNetwork: allowPrivateNetwork, rotateSecret: rotateSecret, reason: change.reason, expectedVersion: change.expectedVersion
                )
            )
            say("published routing release \(set.version) by \(set.author)")
            say("merchant \(set.endpoint.merchantID) is notified at \(set.endpoint.url)\(set.endpoint.allowPrivateNetwork ? " (private network allowed)" : "")")
            if let secret = set.secret {
                say("signing secret: \(secret)")
                say("  shown this once and stored nowhere in the clear: the merchant checks OrderCell-Signature with it (docs/events.md)")
            }
        }
    }

    struct ShowNotify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Print a merchant's notify endpoint (never its secret).")
        @OptionGroup var connection: Connection
        @Argument(help: "The merchant id.") var merchant: String
        func run() async throws { try printJSON(try await connection.client.notifyEndpoint(of: merchant)) }
    }

    struct ListNotify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List every merchant's notify endpoint.")
        @OptionGroup var connection: Connection
        func run() async throws { try printJSON(try await connection.client.notifyEndpoints()) }
    }

    struct RemoveNotify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove", abstract: "Stop notifying a merchant: its later events are not notified; pending ones fail until their schedule ends, then are dead."
        )
        @OptionGroup var connection: Connection
        @Argument(help: "The merchant id.") var merchant: String
        @OptionGroup var change: Change
        func run() async throws { printChange(try await connection.client.removeNotifyEndpoint(of: merchant, change.request)) }
    }

    // MARK: The feed and the notifications

    struct Feed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "feed", abstract: "Each cell's notifier: its place in the cell's event feed, its lag, and the notifications waiting or dead."
        )
        @OptionGroup var connection: Connection
        @Flag(help: "Print the answer as JSON.") var json = false
        func run() async throws {
            let overview = try await connection.client.feed()
            if json { return try printJSON(overview) }
            var rows = [["CELL", "CURSOR", "LAG", "PENDING", "DUE", "DEAD", "OLDEST PENDING", "NOTIFIER"]]
            for cell in overview.cells {
                if let error = cell.error {
                    rows.append(["\(cell.cellID)", "-", "-", "-", "-", "-", "-", "unreachable: \(error.prefix(60))"])
                    continue
                }
                rows.append([
                    "\(cell.cellID)", cell.cursor ?? "-", cell.feedLagSeconds.map { String(format: "%.1fs", $0) } ?? "-", "\(cell.pending ?? 0)",
                    "\(cell.due ?? 0)", "\(cell.dead ?? 0)", cell.oldestPendingSince ?? "-", cell.leaseHolder ?? "(none)",
                ])
            }
            say("as of \(overview.asOf)")
            for line in Table.lines(rows) { say(line) }
        }
    }

    struct NotificationsAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "notifications", abstract: "One cell's notifications: list them by status, redeliver dead ones.",
            subcommands: [ListNotifications.self, Redeliver.self]
        )
    }

    struct ListNotifications: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List a cell's notifications (dead ones unless --status says otherwise).")
        @OptionGroup var connection: Connection
        @Argument(help: "The cell number.") var cell: Int
        @Option(help: "pending, delivered or dead.") var status = "dead"
        @Option(help: "Notifications after this event id (the previous page's next_after).") var after: String?
        @Option(help: "At most this many, 1...1000.") var limit = 100
        func run() async throws {
            guard let status = NotificationStatus(rawValue: status) else { throw ValidationError("--status must be pending, delivered or dead") }
            try printJSON(try await connection.client.notifications(in: try cellID(cell), status: status, after: after, limit: limit))
        }
    }

    struct Redeliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "redeliver", abstract: "Send a cell's dead notifications again, at once and with their schedule anew (all of them unless event ids are given)."
        )
        @OptionGroup var connection: Connection
        @Argument(help: "The cell number.") var cell: Int
        @Argument(help: "Event ids (order id-sequence); none: every dead notification of the cell.") var eventIDs: [String] = []
        @Option(help: "Why (logged with the operator's name).") var reason: String
        func run() async throws {
            let answer = try await connection.client.redeliverNotifications(
                in: try cellID(cell), RedeliverRequest(eventIDs: eventIDs.isEmpty ? nil : eventIDs, reason: reason)
            )
            say("cell \(answer.cellID): \(answer.redelivered) dead notification\(answer.redelivered == 1 ? "" : "s") due again, by \(answer.author)")
        }
    }
}

/// Columns aligned for people: each as wide as its widest cell, two spaces between.
enum Table {
    static func lines(_ rows: [[String]]) -> [String] {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
    }
}
