import AsyncHTTPClient
import CellProtocol
import CellRouting
import Foundation
import LocalCluster
import NIOSSL
import OrderCellCluster
import OrderCellTestSupport
import OrderModel
import OrderProxy
import Testing

extension LocalClusterSuites {
    /// A cluster as `cluster up` starts it by default: its proxies take only signed requests
    /// (docs/security.md), access keys reach every proxy with the routing push, and every hop
    /// speaks TLS with certificates of the cluster's own CA.
    @Suite("Signed requests and TLS on a cluster", .serialized, .localCluster(cells: 1, signedRequests: true, transportSecurity: true))
    struct SignedRequestClusterTests {
        var cluster: LocalClusterFixture { LocalClusterFixture.current! }

        /// Waits until `proxy` answers `call` with `status`; how long it took.
        func until(_ status: Int, from proxy: APIClient, _ call: @escaping (APIClient) async throws -> HTTPResult) async throws -> Duration {
            let started = ContinuousClock.now
            try await waitUntil(timeout: .seconds(10)) { try await call(proxy).status == status }
            return ContinuousClock.now - started
        }

        @Test func everyHopSpeaksTLSAndRefusesPlaintextStrangersAndDowngrades() async throws {
            let state = cluster.state
            let caFile = try #require(state.caFile)
            let proxyPorts = state.components.filter { $0.kind == "proxy" }.map(\.port)
            let controlPort = try #require(state.components.first { $0.kind == "control" }?.port)
            let cellPorts = state.components.filter { $0.kind == "cell" }.map(\.port)
            #expect(proxyPorts.count == 2 && cellPorts.count == 2)
            #expect(state.proxyURLs.allSatisfy { $0.hasPrefix("https://") } && state.controlURL.hasPrefix("https://"))

            // Over TLS with the cluster's CA: the public API, the admin API, the followers (the proxies got the routing).
            for proxy in cluster.proxies { #expect(try await proxy.send(.GET, "/healthz").status == 200) }
            #expect(try await cluster.control.send(.GET, "/admin/cells", admin: true).status == 200)
            #expect(try await cluster.proxies[0].send(.GET, "/admin/cells", admin: true).status == 200)

            // Plaintext HTTP to every HTTP listener: not one HTTP answer, the connection closed.
            for port in proxyPorts + [controlPort] {
                let answer = try await RawConnection.exchange(port: port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", timeout: .seconds(10))
                #expect(answer.closed && !answer.text.contains("HTTP/1.1"), "port \(port) answered plaintext: \(answer.text.prefix(80))")
            }

            // A downgrade: a client that offers at most TLS 1.1 gets no handshake; a client that trusts
            // only the system's CAs refuses the cluster's certificates.
            var old = TLSConfiguration.makeClientConfiguration()
            old.maximumTLSVersion = .tlsv11
            old.trustRoots = .file(caFile)
            var oldConfiguration = HTTPClient.Configuration()
            oldConfiguration.tlsConfiguration = old
            let oldClient = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: oldConfiguration)
            let stranger = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
            // (The HTTP client retries a failed connection until the request's deadline: a short one.)
            // Each fails its handshake, for its own reason (not a timeout): the server's protocol-version alert,
            // the client's failed verification.
            for url in [state.proxyURLs[0], state.controlURL] {
                for (client, reason) in [(oldClient, "PROTOCOL_VERSION"), (stranger, "CERTIFICATE_VERIFY_FAILED")] {
                    await #expect("\(url) took a downgraded or untrusting client") {
                        _ = try await client.execute(HTTPClientRequest(url: url + "/healthz"), timeout: .seconds(2))
                    } throws: { error in
                        error is NIOSSLError && "\(error)".contains(reason)
                    }
                }
            }
            try await oldClient.shutdown()
            try await stranger.shutdown()

            // The cell protocol: mutual TLS. Refused: plaintext, TLS without a certificate, a certificate of another CA.
            let endpoint = CellServiceEndpoint(host: "127.0.0.1", port: cellPorts[0])
            let otherCA = try ThrowawayCertificateAuthority.loadOrCreate(in: cluster.directory + "/other-ca")
            let impostor = try otherCA.issue("proxy-9", identity: CellCaller.uri(role: .proxy, name: "proxy-9"))
            let refusedClients: [(String, CellClientTLS)] = [
                ("plaintext", .disabled),
                ("TLS without a certificate", try .required(trustRootsFile: caFile)),
                ("a certificate of another CA", try .required(trustRootsFile: caFile, certificateFile: impostor.certificateFile, privateKeyFile: impostor.keyFile)),
            ]
            for (what, tls) in refusedClients {
                let client = CellServiceClient(cell: CellID(1)!, endpoints: [endpoint], tls: tls, timeout: .seconds(10))
                await #expect(throws: (any Error).self, "the cell service answered \(what)") { _ = try await client.fault() }
                client.shutdown()
            }

            // An operator's certificate of the cluster's CA: it reads and sets drill faults, and never makes or pays an order.
            let (certificate, key) = try #require(state.operatorCertificate)
            let operatorClient = CellServiceClient(
                cell: CellID(1)!, endpoints: [endpoint], tls: try .required(trustRootsFile: caFile, certificateFile: certificate, privateKeyFile: key),
                timeout: .seconds(10)
            )
            defer { operatorClient.shutdown() }
            #expect(try await operatorClient.fault() == CellFault.none)
            let request = try CreateOrderRequest(merchantID: "m1", outTradeNo: "by-an-operator", amount: 100, currency: "CNY", description: nil, expireSeconds: nil)
            await #expect { _ = try await operatorClient.create(request) } throws: { "\($0)".contains("operator/admin may not call createOrder") }
            try await operatorClient.setFault(.none, by: "ignored: the certificate names the operator")
            let cellLog = try String(contentsOfFile: try #require(state.components.first { $0.port == cellPorts[0] }).log, encoding: .utf8)
            #expect(cellLog.contains("caller=operator/admin") && cellLog.contains("operator=admin"), "the cell recorded who set its drill fault")

            // A drill fault set through a proxy names the operator the proxy authenticated.
            #expect(try await cluster.proxies[0].send(.PUT, "/admin/cells/1/fault", #"{"mode":"latency","latency_ms":1}"#, admin: true).status == 200)
            #expect(try await cluster.proxies[0].send(.DELETE, "/admin/cells/1/fault", admin: true).status == 200)
            let lines = try state.components.filter { $0.kind == "cell" }.flatMap { try String(contentsOfFile: $0.log, encoding: .utf8).split(separator: "\n") }
            #expect(
                lines.contains { $0.contains("drill fault set") && $0.contains("caller=proxy/proxy-1") && $0.contains("operator=admin") && $0.contains("fault=latency") },
                "the cell recorded the proxy relaying the operator"
            )
            // The proxies' and the control plane's own calls (orders, health probes, the index's reconciliation)
            // were never refused by their roles: the only refusals are the operator's create above.
            let refusals = lines.filter { $0.contains("refused a cell protocol call") }
            #expect(!refusals.isEmpty && refusals.allSatisfy { $0.contains("caller=operator/admin") }, "\(refusals)")
        }

        @Test func noSecretIsOnACommandLineInALogOrInAnAnswer() async throws {
            let control = cluster.control
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
            // A TLS private key's PEM body (a line of it would do).
            let tlsKey = try String(contentsOfFile: try #require(cluster.state.tlsDirectory) + "/proxy-1.key", encoding: .utf8)
                .split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
            let secrets: [(String, String)] = [
                ("the admin token", cluster.state.adminToken), ("the followers' token", try #require(cluster.state.followerToken)),
                ("the credential key", credentialKey), ("a merchant's secret", merchantSecret), ("a TLS private key", String(tlsKey.prefix(40))),
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
            let control = cluster.control
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
