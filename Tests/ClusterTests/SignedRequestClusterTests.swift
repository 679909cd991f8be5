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
