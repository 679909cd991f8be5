import AsyncHTTPClient
import CellRouting
import Foundation
import NIOCore
import NIOHTTP1
import OrderCellPlatform
import OrderModel

/// Reads Patroni's keys from etcd (the v3 API's JSON gateway) and asks a
/// cell's Patroni for a switchover or a failover (its REST API).
public struct PatroniClient: Sendable {
    public let dcs: PatroniDCS
    /// How long one call may take; a frozen etcd member or Patroni must not hold the follower up.
    public var callTimeout: Duration = .seconds(2)

    public init(dcs: PatroniDCS) {
        self.dcs = dcs
    }

    /// `cell`'s Patroni cluster as etcd has it now; throws when no etcd member answers.
    ///
    /// A standby that took the leader lock writes `role: primary` into its
    /// member key only at its next loop (up to `loop_wait`, a second or two
    /// after its server accepts writes): while the key lags, the leader's
    /// own REST API is asked (`GET /patroni`, whose role PostgreSQL itself
    /// reports), so that a failover's release waits for nothing but the
    /// promotion.
    public func cell(_ cell: CellID) async throws -> PatroniCell {
        let prefix = dcs.prefix(of: cell)
        var state = PatroniCell(keys: try await keys(withPrefix: prefix), prefix: prefix)
        if let leader = state.leader, let member = state.members[leader], !member.isPrimary, !member.api.isEmpty,
            let answer = try? await get(member.api + "/patroni", timeout: .seconds(1)), answer.status == 200,
            let status = (try? JSONSerialization.jsonObject(with: answer.body)) as? [String: Any],
            status["role"] as? String == "primary" || status["role"] as? String == "master", status["state"] as? String == "running"
        {
            state.members[leader]?.role = "primary"
            state.members[leader]?.state = "running"
            // The member key's timeline lags as its role does: the release names the one the server runs on.
            if let timeline = status["timeline"] as? Int { state.members[leader]?.timeline = timeline }
        }
        return state
    }

    /// Every key under `prefix` and its value, from the first etcd member that answers.
    func keys(withPrefix prefix: String) async throws -> [String: String] {
        var end = Array(prefix.utf8)
        end[end.count - 1] += 1  // the range's end: the prefix with its last byte incremented
        let body = try JSONSerialization.data(withJSONObject: [
            "key": Data(prefix.utf8).base64EncodedString(), "range_end": Data(end).base64EncodedString(),
        ])
        var failures: [String] = []
        for endpoint in dcs.etcd {
            do {
                let answer = try await post(endpoint + "/v3/kv/range", body: body)
                guard answer.status == 200 else {
                    failures.append("\(endpoint): \(answer.status)")
                    continue
                }
                let object = (try JSONSerialization.jsonObject(with: answer.body)) as? [String: Any]
                var keys: [String: String] = [:]
                for pair in object?["kvs"] as? [[String: Any]] ?? [] {
                    guard let key = (pair["key"] as? String).flatMap({ Data(base64Encoded: $0) }) else { continue }
                    let value = (pair["value"] as? String).flatMap { Data(base64Encoded: $0) } ?? Data()
                    keys[String(decoding: key, as: UTF8.self)] = String(decoding: value, as: UTF8.self)
                }
                return keys
            } catch {
                failures.append("\(endpoint): \(error)")
            }
        }
        throw PatroniUnavailable(what: "etcd", detail: failures.joined(separator: "; "))
    }

    /// A planned switchover of `cell` to `candidate` (the synchronous standby
    /// when nil), asked of its leader's Patroni; returns once Patroni has
    /// done it (its REST call waits for the new leader).
    public func switchover(_ cell: CellID, candidate: String?) async throws {
        let state = try await self.cell(cell)
        guard let leader = state.leader, let member = state.members[leader] else {
            throw OrderError(.cellUnavailable, "cell \(cell)'s Patroni cluster has no leader now: nothing to switch over from", retryAfterSeconds: 5)
        }
        var request: [String: String] = ["leader": leader]
        if let candidate = candidate ?? state.synchronousStandby { request["candidate"] = candidate }
        try await ask(member.api + "/switchover", request, cell: cell, what: "switchover")
    }

    /// A forced failover of `cell` to `candidate` (the synchronous standby
    /// when nil), asked of that member's Patroni.
    public func failover(_ cell: CellID, candidate: String?) async throws {
        let state = try await self.cell(cell)
        guard let name = candidate ?? state.synchronousStandby ?? state.members.keys.sorted().first(where: { $0 != state.leader }),
            let member = state.members[name]
        else {
            throw OrderError(.cellUnavailable, "cell \(cell)'s Patroni cluster has no standby to fail over to", retryAfterSeconds: 5)
        }
        guard name != state.leader else { throw OrderError.invalidRequest("\(name) is cell \(cell)'s leader already") }
        try await ask(member.api + "/failover", ["candidate": name], cell: cell, what: "failover")
    }

    private func ask(_ url: String, _ request: [String: String], cell: CellID, what: String) async throws {
        let answer = try await post(url, body: try JSONSerialization.data(withJSONObject: request), timeout: .seconds(60))
        let text = String(decoding: answer.body, as: UTF8.self).prefix(300)
        switch answer.status {
        case 200...299: return
        case 412, 400: throw OrderError.invalidRequest("Patroni refused the \(what) of cell \(cell): \(text)")
        default: throw OrderError(.cellUnavailable, "Patroni could not do the \(what) of cell \(cell): \(answer.status) \(text)", retryAfterSeconds: 5)
        }
    }

    private func post(_ url: String, body: Data, timeout: Duration? = nil) async throws -> (status: Int, body: Data) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        return try await execute(request, timeout: timeout)
    }

    private func get(_ url: String, timeout: Duration? = nil) async throws -> (status: Int, body: Data) {
        try await execute(HTTPClientRequest(url: url), timeout: timeout)
    }

    private func execute(_ request: HTTPClientRequest, timeout: Duration?) async throws -> (status: Int, body: Data) {
        let limit = timeout ?? callTimeout
        let response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(limit.wholeMilliseconds))
        let collected = try await response.body.collect(upTo: 4 << 20)
        return (Int(response.status.code), Data(collected.readableBytesView))
    }
}

/// etcd or Patroni did not answer.
public struct PatroniUnavailable: Error, CustomStringConvertible {
    public var what: String
    public var detail: String
    public var description: String { "\(what) did not answer: \(detail)" }
}
