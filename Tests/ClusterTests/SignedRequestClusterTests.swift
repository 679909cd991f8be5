import Foundation
import OrderCellCluster
import OrderCellTestSupport
import Testing

extension LocalClusterSuites {
    /// A cluster as `cluster up` starts it by default: its proxies take only signed requests
    /// (docs/security.md), and access keys reach every proxy with the routing push.
    @Suite("Signed requests on a cluster", .serialized, .localCluster(cells: 1, signedRequests: true))
    struct SignedRequestClusterTests {
        var cluster: LocalClusterFixture { LocalClusterFixture.current! }

        /// Waits until `proxy` answers `call` with `status`; how long it took.
        func until(_ status: Int, from proxy: APIClient, _ call: @escaping (APIClient) async throws -> HTTPResult) async throws -> Duration {
            let started = ContinuousClock.now
            try await waitUntil(timeout: .seconds(10)) { try await call(proxy).status == status }
            return ContinuousClock.now - started
        }

        @Test func noSecretIsOnACommandLineInALogOrInAnAnswer() async throws {
            let control = APIClient(base: cluster.state.controlURL, adminToken: cluster.state.adminToken)
            let made = try await control.send(.POST, "/admin/access-keys", #"{"role":"merchant","merchant_id":"m9","reason":"secrets test"}"#, admin: true)
            try #require(made.status == 201, "\(made.text)")
            let keyID = try #require((made.json["key"] as? [String: Any])?["key_id"] as? String)
            let merchantSecret = try #require(made["secret"])
            // Some work, good and bad, so the logs have something to say.
            let signed = cluster.proxies[0].signing(with: RequestSigner(keyID: keyID, secret: merchantSecret))
            #expect(try await signed.create("m9", "secrets-1").status == 201)
            let wrong = cluster.proxies[1].signing(with: RequestSigner(keyID: keyID, secret: "ocs_" + String(repeating: "B", count: 43)))
            let refused = try await wrong.create("m9", "secrets-2")
            #expect(refused.status == 401)
            let viewer = try await cluster.proxies[0].send(.GET, "/admin/cells", nil, authorization: "Bearer not-the-token")
            #expect(viewer.status == 401)
            let listed = try await control.send(.GET, "/admin/access-keys", admin: true)
            let credentialKey = try String(contentsOfFile: cluster.directory + "/credential.key", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let secrets: [(String, String)] = [
                ("the admin token", cluster.state.adminToken), ("the followers' token", try #require(cluster.state.followerToken)),
                ("the credential key", credentialKey), ("a merchant's secret", merchantSecret),
            ]
            // The command lines of the cluster's OrderCell processes, as ps shows them.
            let state = try LocalClusterRunner.state(in: cluster.directory)
            var commandLines: [String: String] = [:]
            for component in state.components where ["control", "proxy", "cell"].contains(component.kind) {
                let pid = try #require(component.pid)
                let raw = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
                commandLines[component.name] = String(decoding: raw.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
            }
            #expect(commandLines.count == state.components.filter { ["control", "proxy", "cell"].contains($0.kind) }.count)
            // Every log of the cluster, OrderCell's, PostgreSQL's, Patroni's and etcd's.
            let logs = try FileManager.default.contentsOfDirectory(atPath: cluster.directory + "/logs").map { name in
                (name, (try? String(contentsOfFile: cluster.directory + "/logs/" + name, encoding: .utf8)) ?? "")
            }
            #expect(!logs.isEmpty)
            for (what, secret) in secrets {
                for (name, line) in commandLines { #expect(!line.contains(secret), "\(what) is on the command line of \(name)") }
                for (name, text) in logs { #expect(!text.contains(secret), "\(what) is in the log \(name)") }
                for answer in [refused, viewer, listed] { #expect(!answer.text.contains(secret), "\(what) is in an answer: \(answer.text.prefix(200))") }
            }
        }

        @Test func aKeyMadeOrRevokedTakesEffectOnEveryProxyWithThePush() async throws {
            let control = APIClient(base: cluster.state.controlURL, adminToken: cluster.state.adminToken)
            let proxies = cluster.proxies
            // Unsigned, refused.
            for proxy in proxies {
                let unsigned = try await proxy.create("m1", "unsigned-1")
                #expect(unsigned.status == 401 && unsigned.code == "unauthorized", "\(unsigned.text)")
            }
            // A key made at the control plane: both proxies take its signature once the release reaches them.
            let made = try await control.send(.POST, "/admin/access-keys", #"{"role":"merchant","merchant_id":"m1","reason":"cluster test"}"#, admin: true)
            try #require(made.status == 201, "\(made.text)")
            let keyID = try #require((made.json["key"] as? [String: Any])?["key_id"] as? String)
            let signer = RequestSigner(keyID: keyID, secret: try #require(made["secret"]))
            var counter = 0
            var arrivals: [Duration] = []
            for proxy in proxies.map({ $0.signing(with: signer) }) {
                arrivals.append(try await until(201, from: proxy) { counter += 1; return try await $0.create("m1", "signed-\(counter)") })
            }
            // Revoked: both proxies refuse it once the release reaches them.
            let revoked = try await control.send(.DELETE, "/admin/access-keys/\(keyID)", #"{"reason":"cluster test"}"#, admin: true)
            #expect(revoked.status == 200, "\(revoked.text)")
            var departures: [Duration] = []
            for proxy in proxies.map({ $0.signing(with: signer) }) {
                departures.append(try await until(401, from: proxy) { counter += 1; return try await $0.create("m1", "signed-\(counter)") })
                let refused = try await proxy.create("m1", "after-revocation")
                #expect(refused.code == "key_revoked", "\(refused.text)")
            }
            print(
                "signed requests on a cluster: a new key taken by both proxies \(arrivals.map { MerchantKeyClusterTests.seconds($0) }) s after its release, "
                    + "a revoked one refused \(departures.map { MerchantKeyClusterTests.seconds($0) }) s after"
            )
        }
    }
}
