import AsyncHTTPClient
import CellRouting
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Follows the control plane's routing table by long poll and hands every
/// newer version to `onChange`. While the control plane is unreachable or
/// refuses the follower's token it retries every half second and the
/// caller keeps the table it has.
public struct RoutingWatcher: Sendable {
    public let controlURL: String
    /// Bearer token the control plane accepts for reading the routing table
    /// (role viewer or operator); the table names every cell's storage.
    private let token: String?
    /// The client that calls `controlURL` (``TrustedHTTPClients``: an
    /// `https://` control plane's certificate is checked against the deployment's CA).
    private let http: HTTPClient
    private let logger: Logger

    /// The control plane answered the long poll with neither a table nor
    /// "not modified" (a missing or refused token, most likely).
    public struct Refused: Error, CustomStringConvertible {
        public var status: UInt
        public var body: String
        public var description: String { "the control plane answered \(status): \(body)" }
    }

    public init(controlURL: String, token: String?, http: HTTPClient = .shared, logger: Logger) {
        self.controlURL = controlURL
        self.token = token
        self.http = http
        self.logger = logger
    }

    /// Fetches the current table, retrying until `timeout`.
    public func fetch(timeout: Duration = .seconds(30)) async throws -> RoutingTable {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            do {
                if let table = try await poll(after: 0, epoch: nil, wait: 0) { return table }
            } catch {
                if clock.now >= deadline { throw error }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Watches until cancelled; `onContact` hears of every answer of the control plane.
    public func watch(
        from start: RoutingTable, onContact: @Sendable () -> Void = {}, onChange: @Sendable (RoutingTable) async -> Void
    ) async {
        var known = start
        var lastRefusal: String?
        while !Task.isCancelled {
            do {
                let table = try await poll(after: known.version, epoch: known.epoch, wait: 20)
                onContact()
                lastRefusal = nil
                if let table, table.supersedes(known) {
                    known = table
                    await onChange(table)
                }
            } catch let refused as Refused {
                // A misconfigured token does not fix itself: said once per kind of refusal, not every half second.
                if lastRefusal != refused.description {
                    logger.error("the control plane refuses to send the routing table", metadata: ["error": "\(refused)"])
                    lastRefusal = refused.description
                }
                try? await Task.sleep(for: .milliseconds(500))
            } catch {
                logger.debug("control plane unreachable", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    private func poll(after version: UInt64, epoch: String?, wait: Int) async throws -> RoutingTable? {
        let epochParameter = epoch.map { "&epoch=\($0)" } ?? ""
        var request = HTTPClientRequest(url: "\(controlURL)/v1/routing?after=\(version)\(epochParameter)&wait=\(wait)")
        request.method = .GET
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await http.execute(request, timeout: .seconds(Int64(wait) + 5))
        let body = try await response.body.collect(upTo: 16 << 20)
        switch response.status {
        case .ok: return try JSONDecoder().decode(RoutingTable.self, from: Data(body.readableBytesView))
        case .notModified: return nil
        default: throw Refused(status: response.status.code, body: String(buffer: body).prefix(300).description)
        }
    }
}
