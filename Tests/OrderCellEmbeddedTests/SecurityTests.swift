import Foundation
import LocalCluster
import OrderCellTestSupport
import OrderHTTP
import OrderModel
import Testing

/// Who may do what on the public API, and signed requests (docs/security.md), end to end over HTTP.
@Suite("Callers, access keys and signed requests")
struct SecurityTests {
    /// A key made through the control plane's API, as an operator would: its id and its secret (shown once).
    static func makeKey(_ api: APIClient, role: String, merchant: String? = nil) async throws -> (id: String, secret: String) {
        let body = merchant.map { #"{"role":"\#(role)","merchant_id":"\#($0)","reason":"test"}"# } ?? #"{"role":"\#(role)","reason":"test"}"#
        let made = try await api.send(.POST, "/control/admin/access-keys", body, admin: true)
        try #require(made.status == 201, "\(made.text)")
        let key = try #require(made.json["key"] as? [String: Any])
        return (try #require(key["key_id"] as? String), try #require(made["secret"]))
    }

    /// The table of docs/security.md's "Callers and what they may do": call → caller column → status.
    static func documentedMatrix() throws -> (columns: [String], rows: [String: [String: Int]]) {
        let document = try String(contentsOfFile: ArchitectureDocumentTests.root.appendingPathComponent("docs/security.md").path, encoding: .utf8)
        let section = try #require(document.components(separatedBy: "## Callers and what they may do").dropFirst().first)
        let lines = section.split(separator: "\n").map(String.init).filter { $0.hasPrefix("|") }
        func cells(_ line: String) -> [String] { line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } }
        let header = cells(try #require(lines.first))
        var rows: [String: [String: Int]] = [:]
        for line in lines.dropFirst(2) {
            let row = cells(line)
            guard row.count == header.count else { break }
            var statuses: [String: Int] = [:]
            for (column, value) in zip(header.dropFirst(), row.dropFirst()) { statuses[column] = Int(value) }
            rows[row[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = statuses
        }
        return (Array(header.dropFirst()), rows)
    }

    @Test("every call of the public API as the owning merchant, another merchant, the payment service, an operator and anonymously: the table of docs/security.md")
    func theMatrixOfCallersIsTheDocumentedOne() async throws {
        try await TestSystem.run(requireSignedRequests: true) { system in
            let admin = system.client
            let now: @Sendable () -> Int64 = { [clock = system.clock] in clock.now.secondsSinceEpoch }
            let m1 = try await Self.makeKey(admin, role: "merchant", merchant: "m1")
            let m2 = try await Self.makeKey(admin, role: "merchant", merchant: "m2")
            let payer = try await Self.makeKey(admin, role: "payment_service")
            let owner = admin.signing(with: RequestSigner(keyID: m1.id, secret: m1.secret, now: now))
            let callers: [(String, APIClient, Bool)] = [
                ("owning merchant", owner, false),
                ("another merchant", admin.signing(with: RequestSigner(keyID: m2.id, secret: m2.secret, now: now)), false),
                ("payment service", admin.signing(with: RequestSigner(keyID: payer.id, secret: payer.secret, now: now)), false),
                ("operator token", admin, true),
                ("anonymous", admin, false),
            ]
            let paying = admin.signing(with: RequestSigner(keyID: payer.id, secret: payer.secret, now: now))
            var counter = 0
            /// A fresh order of m1, paid or not.
            func order(paid: Bool) async throws -> String {
                counter += 1
                let created = try await owner.create("m1", "matrix-\(counter)")
                let id = try #require(created["order_id"], "\(created.text)")
                if paid { #expect(try await paying.pay(id, "pay-matrix-\(counter)").status == 200) }
                return id
            }
            #expect(try await owner.create("m1", "looked-up").status == 201)
            let documented = try Self.documentedMatrix()
            #expect(Set(documented.columns) == Set(callers.map(\.0)))
            var observed: [String: [String: Int]] = [:]
            for (name, client, asOperator) in callers {
                counter += 1
                let calls: [(String, () async throws -> HTTPResult)] = [
                    ("POST /v1/orders", { [counter] in try await client.send(.POST, "/v1/orders", #"{"merchant_id":"m1","out_trade_no":"made-\#(counter)","amount":1000,"currency":"CNY"}"#, admin: asOperator) }),
                    ("GET /v1/orders?merchant_id=…&out_trade_no=…", { try await client.send(.GET, "/v1/orders?merchant_id=m1&out_trade_no=looked-up", admin: asOperator) }),
                    ("GET /v1/orders/{order_id}", { try await client.send(.GET, "/v1/orders/\(try await order(paid: false))", admin: asOperator) }),
                    ("POST /v1/orders/{order_id}/pay", { try await client.send(.POST, "/v1/orders/\(try await order(paid: false))/pay", #"{"payment_id":"p","amount":1000}"#, admin: asOperator) }),
                    ("POST /v1/orders/{order_id}/close", { try await client.send(.POST, "/v1/orders/\(try await order(paid: false))/close", admin: asOperator) }),
                    ("POST /v1/orders/{order_id}/refunds", { try await client.send(.POST, "/v1/orders/\(try await order(paid: true))/refunds", #"{"refund_id":"r","amount":100}"#, admin: asOperator) }),
                    ("GET /v1/orders/{order_id}/refunds", { try await client.send(.GET, "/v1/orders/\(try await order(paid: true))/refunds", admin: asOperator) }),
                    ("GET /v1/orders/{order_id}/events", { try await client.send(.GET, "/v1/orders/\(try await order(paid: false))/events", admin: asOperator) }),
                ]
                for (call, make) in calls {
                    let answer = try await make()
                    observed[call, default: [:]][name] = answer.status
                    if answer.status >= 400 { #expect(answer.contentType == "application/problem+json" && answer.code != nil, "\(call) as \(name): \(answer.text)") }
                }
            }
            #expect(observed == documented.rows, "observed \(observed)\ndocumented \(documented.rows)")

            // Another merchant's order reads as one that does not exist: the same code and the same detail.
            let theirs = try await order(paid: false)
            let other = callers[1].1
            let hidden = try await other.send(.GET, "/v1/orders/\(theirs)")
            var missingID = try OrderID(parsing: theirs)
            missingID = try OrderID(cell: missingID.cell, createdAt: missingID.createdAt, sequence: 999_999)
            let missing = try await owner.send(.GET, "/v1/orders/\(missingID)")
            #expect(hidden.status == 404 && missing.status == 404 && hidden.code == "order_not_found" && missing.code == "order_not_found")
            #expect(hidden["detail"]?.replacingOccurrences(of: theirs, with: "ID") == missing["detail"]?.replacingOccurrences(of: missingID.description, with: "ID"))
        }
    }

    @Test("signatures: wrong secret, altered body, path or query, stale timestamp, replayed nonce, unknown, revoked and rotated keys — each its own 401")
    func signatureChecks() async throws {
        try await TestSystem.run(requireSignedRequests: true) { system in
            let admin = system.client
            let clock = system.clock
            let now: @Sendable () -> Int64 = { clock.now.secondsSinceEpoch }
            let key = try await Self.makeKey(admin, role: "merchant", merchant: "m1")
            let signer = RequestSigner(keyID: key.id, secret: key.secret, now: now)
            let body = #"{"merchant_id":"m1","out_trade_no":"sig-1","amount":1000,"currency":"CNY"}"#
            func create(_ authorization: String?, path: String = "/v1/orders", body sent: String = body) async throws -> HTTPResult {
                try await admin.send(.POST, path, sent, authorization: authorization)
            }
            #expect(try await create(signer.authorization("POST", "/v1/orders", body)).status == 201)

            // Each refusal names its cause.
            let wrongSecret = RequestSigner(keyID: key.id, secret: "ocs_" + String(repeating: "A", count: 43), now: now)
            #expect(try await create(wrongSecret.authorization("POST", "/v1/orders", body)).code == "signature_mismatch")
            let altered = body.replacingOccurrences(of: "1000", with: "1")
            #expect(try await create(signer.authorization("POST", "/v1/orders", body), body: altered).code == "signature_mismatch")
            let order = try #require(try await admin.signing(with: signer).send(.GET, "/v1/orders?merchant_id=m1&out_trade_no=sig-1")["order_id"])
            let readPath = "/v1/orders/\(order)"
            let forOther = signer.authorization("GET", readPath, nil)
            #expect(try await admin.send(.GET, readPath + "/events", nil, authorization: forOther).code == "signature_mismatch", "altered path")
            let lookup = signer.authorization("GET", "/v1/orders", nil, nonce: RequestSignature.newNonce())
            #expect(try await admin.send(.GET, "/v1/orders?merchant_id=m1&out_trade_no=sig-1", nil, authorization: lookup).code == "signature_mismatch", "a query not signed")
            let signedQuery = signer.authorization("GET", "/v1/orders?merchant_id=m1&out_trade_no=sig-1", nil)
            #expect(try await admin.send(.GET, "/v1/orders?merchant_id=m1&out_trade_no=sig-2", nil, authorization: signedQuery).code == "signature_mismatch", "altered query")
            let stale = RequestSigner(keyID: key.id, secret: key.secret, now: { clock.now.secondsSinceEpoch - 301 })
            #expect(try await create(stale.authorization("POST", "/v1/orders", body)).code == "timestamp_out_of_window")
            let ahead = RequestSigner(keyID: key.id, secret: key.secret, now: { clock.now.secondsSinceEpoch + 301 })
            #expect(try await create(ahead.authorization("POST", "/v1/orders", body)).code == "timestamp_out_of_window")
            let once = signer.authorization("GET", readPath, nil)
            #expect(try await admin.send(.GET, readPath, nil, authorization: once).status == 200)
            let replayed = try await admin.send(.GET, readPath, nil, authorization: once)
            #expect(replayed.status == 401 && replayed.code == "nonce_replayed", "\(replayed.text)")
            let unknown = RequestSigner(keyID: "ock_" + String(repeating: "0", count: 24), secret: key.secret, now: now)
            #expect(try await create(unknown.authorization("POST", "/v1/orders", body)).code == "unknown_key")
            #expect(try await create(nil).code == "unauthorized")
            #expect(try await create("Bearer \(TestSystem.adminToken)").code == "unauthorized")
            #expect(try await create(#"ORDERCELL-HMAC-SHA256 key_id="x""#).code == "unauthorized")

            // Rotation: old and new both accepted for the overlap, the old one refused after it.
            let rotated = try await admin.send(.POST, "/control/admin/access-keys/\(key.id)/rotate", #"{"overlap_seconds":600,"reason":"yearly"}"#, admin: true)
            #expect(rotated.status == 201, "\(rotated.text)")
            let successor = RequestSigner(
                keyID: try #require((rotated.json["key"] as? [String: Any])?["key_id"] as? String), secret: try #require(rotated["secret"]), now: now
            )
            #expect(try await admin.signing(with: signer).send(.GET, readPath).status == 200, "the old key within the overlap")
            #expect(try await admin.signing(with: successor).send(.GET, readPath).status == 200, "the new key")
            clock.advance(seconds: 601)
            let expired = try await admin.signing(with: signer).send(.GET, readPath)
            #expect(expired.status == 401 && expired.code == "key_expired", "\(expired.text)")
            #expect(try await admin.signing(with: successor).send(.GET, readPath).status == 200)

            // Revocation: at once.
            let revoked = try await admin.send(.DELETE, "/control/admin/access-keys/\(successor.keyID)", #"{"reason":"leaked"}"#, admin: true)
            #expect(revoked.status == 200 && (revoked.json["key"] as? [String: Any])?["standing"] as? String == "revoked", "\(revoked.text)")
            let refused = try await admin.signing(with: successor).send(.GET, readPath)
            #expect(refused.status == 401 && refused.code == "key_revoked", "\(refused.text)")

            // The list shows standings and never a secret; the releases say who changed what, secrets sealed.
            let listed = try await admin.send(.GET, "/control/admin/access-keys?merchant_id=m1", admin: true)
            #expect(listed.status == 200 && !listed.text.contains("ocs_") && !listed.text.contains("sealed"), "\(listed.text)")
            #expect((listed.json["access_keys"] as? [[String: Any]])?.compactMap { $0["standing"] as? String }.sorted() == ["expired", "revoked"])
            let releases = try await admin.send(.GET, "/control/admin/releases?limit=10", admin: true)
            #expect(releases.text.contains("revoke access key \(successor.keyID)"))
            // Operators' views of the routing never carry a sealed secret either: only the followers' long poll does.
            let sealed = try #require(system.system.control.routingTable.accessKeys[key.id]?.sealedSecret)
            let version = system.system.control.routingTable.version
            for path in ["/control/admin/routing", "/control/admin/releases/\(version)"] {
                let view = try await admin.send(.GET, path, admin: true)
                #expect(view.status == 200 && !view.text.contains(sealed) && view.text.contains("(sealed)"), "\(path)")
            }
        }
    }

    @Test("a rollback keeps the access keys as they are: a revoked key stays revoked, a new one stays")
    func rollbacksKeepAccessKeys() async throws {
        try await TestSystem.run(requireSignedRequests: true) { system in
            let admin = system.client
            let now: @Sendable () -> Int64 = { [clock = system.clock] in clock.now.secondsSinceEpoch }
            let before = system.system.control.routingTable.version
            let old = try await Self.makeKey(admin, role: "merchant", merchant: "m1")
            #expect(try await admin.send(.DELETE, "/control/admin/access-keys/\(old.id)", #"{"reason":"leaked"}"#, admin: true).status == 200)
            let new = try await Self.makeKey(admin, role: "merchant", merchant: "m1")
            // Back to before both keys existed: an operator undoing some routing change.
            let rolledBack = try await admin.send(.POST, "/control/admin/releases/\(before)/rollback", #"{"reason":"undo"}"#, admin: true)
            #expect(rolledBack.status == 200, "\(rolledBack.text)")
            let revoked = try await admin.signing(with: RequestSigner(keyID: old.id, secret: old.secret, now: now)).create("m1", "after-rollback-1")
            #expect(revoked.code == "key_revoked", "\(revoked.text)")
            #expect(try await admin.signing(with: RequestSigner(keyID: new.id, secret: new.secret, now: now)).create("m1", "after-rollback-2").status == 201)
        }
    }

    @Test("over HTTP, past 20 failures from one address: bad signatures and bad bearer tokens are answered 429, good ones still served")
    func failedAuthenticationIsLimited() async throws {
        try await TestSystem.run(requireSignedRequests: true) { system in
            let admin = system.client
            let now: @Sendable () -> Int64 = { [clock = system.clock] in clock.now.secondsSinceEpoch }
            let key = try await Self.makeKey(admin, role: "merchant", merchant: "m1")
            let wrong = admin.signing(with: RequestSigner(keyID: key.id, secret: "ocs_" + String(repeating: "Z", count: 43), now: now))
            var codes: [String?] = []
            for index in 1...22 { codes.append(try await wrong.create("m1", "guess-\(index)").code) }
            #expect(codes.prefix(20).allSatisfy { $0 == "signature_mismatch" } && codes.suffix(2).allSatisfy { $0 == "rate_limited" }, "\(codes)")
            let limited = try await wrong.create("m1", "guess-22")
            #expect(limited.status == 429 && limited.retryAfter != nil)
            // The holder of the secret, from the same address, is served.
            #expect(try await admin.signing(with: RequestSigner(keyID: key.id, secret: key.secret, now: now)).create("m1", "honest-1").status == 201)

            // Bearer tokens of the operator API, likewise.
            var bearer: [Int] = []
            for _ in 1...22 { bearer.append(try await admin.send(.GET, "/admin/cells", nil, authorization: "Bearer guess").status) }
            #expect(bearer.prefix(20).allSatisfy { $0 == 401 } && bearer.suffix(2).allSatisfy { $0 == 429 }, "\(bearer)")
            #expect(try await admin.send(.GET, "/admin/cells", admin: true).status == 200)
        }
    }

    @Test("a rotation racing a revocation never undoes it")
    func rotationsNeverUndoRevocations() async throws {
        try await TestSystem.run(requireSignedRequests: true) { system in
            let admin = system.client
            for round in 0..<8 {
                let key = try await Self.makeKey(admin, role: "merchant", merchant: "m\(round)")
                async let revoked = admin.send(.DELETE, "/control/admin/access-keys/\(key.id)", #"{"reason":"leaked"}"#, admin: true)
                async let rotated = admin.send(.POST, "/control/admin/access-keys/\(key.id)/rotate", #"{"reason":"yearly"}"#, admin: true)
                _ = try await (revoked, rotated)
                #expect(system.system.control.routingTable.accessKeys[key.id]?.revokedAt != nil, "round \(round): the revocation stands")
            }
        }
    }

    @Test("the cluster's servers refuse ordercell dev's well-known admin token (they check OperatorTokens.refusingDevelopmentTokens)")
    func clusterServersRefuseTheDevToken() throws {
        #expect(throws: OrderError.self) { try OperatorTokens(adminToken: "dev-admin-token").refusingDevelopmentTokens() }
        #expect(throws: OrderError.self) { try OperatorTokens([try OperatorToken(parsing: "ops:viewer:dev-admin-token")]).refusingDevelopmentTokens() }
        try OperatorTokens(adminToken: "a-secret-of-our-own", viewerToken: "another").refusingDevelopmentTokens()
    }

    @Test("the operator API refuses bad access-key requests with typed problems")
    func accessKeyAdministration() async throws {
        try await TestSystem.run(requireSignedRequests: true) { system in
            let api = system.client
            for (body, status) in [
                (#"{"role":"root","reason":"x"}"#, 400), (#"{"role":"merchant","reason":"x"}"#, 400),
                (#"{"role":"payment_service","merchant_id":"m1"}"#, 400), (#"{"role":"merchant","merchant_id":"m 1"}"#, 400),
            ] {
                let answer = try await api.send(.POST, "/control/admin/access-keys", body, admin: true)
                #expect(answer.status == status && answer.code == "invalid_request", "\(body): \(answer.text)")
            }
            let created = #"{"role":"merchant","merchant_id":"m1"}"#
            #expect(try await api.send(.POST, "/control/admin/access-keys", created, token: TestSystem.viewerToken).status == 403)
            #expect(try await api.send(.POST, "/control/admin/access-keys", created).status == 401)
            let missing = "ock_" + String(repeating: "a", count: 24)
            #expect(try await api.send(.POST, "/control/admin/access-keys/\(missing)/rotate", #"{"reason":"x"}"#, admin: true).status == 404)
            #expect(try await api.send(.DELETE, "/control/admin/access-keys/not-a-key", admin: true).status == 400)
            let key = try await Self.makeKey(api, role: "merchant", merchant: "m1")
            #expect(try await api.send(.POST, "/control/admin/access-keys/\(key.id)/rotate", #"{"overlap_seconds":2592001}"#, admin: true).status == 400)
            #expect(try await api.send(.DELETE, "/control/admin/access-keys/\(key.id)", admin: true).status == 200)
            #expect(try await api.send(.POST, "/control/admin/access-keys/\(key.id)/rotate", admin: true).code == "invalid_state")
        }
    }

    @Test("the documented shell and Python snippets sign requests the server takes")
    func documentedSnippetsWork() async throws {
        let document = try String(contentsOfFile: ArchitectureDocumentTests.root.appendingPathComponent("docs/security.md").path, encoding: .utf8)
        func block(_ language: String) throws -> String {
            let start = try #require(document.range(of: "```\(language)\n"))
            let end = try #require(document.range(of: "\n```", range: start.upperBound..<document.endIndex))
            return String(document[start.upperBound..<end.lowerBound])
        }
        // The server's clock is the wall clock here: the snippets sign with the time of day.
        let wallClock = Timestamp(millisecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1000))
        try await TestSystem.run(requireSignedRequests: true, clockStart: wallClock) { system in
            let key = try await Self.makeKey(system.client, role: "merchant", merchant: "m1")
            var environment = ProcessInfo.processInfo.environment
            environment["ORDERCELL_URL"] = system.client.base
            environment["ORDERCELL_KEY_ID"] = key.id
            environment["ORDERCELL_SECRET"] = key.secret
            for (interpreter, language, outTradeNo) in [("/bin/bash", "sh", "shell-1"), ("/usr/bin/env", "python", "python-1")] {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: interpreter)
                process.arguments = interpreter == "/bin/bash" ? ["-c", try block(language)] : ["python3", "-c", try block(language)]
                process.environment = environment
                let output = Pipe()
                process.standardOutput = output
                try ProcessLaunch.run(process)
                let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                #expect(process.terminationStatus == 0 && printed.contains(#""out_trade_no":"\#(outTradeNo)""#), "\(language): \(printed)")
            }
        }
    }

    @Test("without --auth the public API takes unsigned calls, as the README's walkthrough makes them")
    func unsignedByDefault() async throws {
        try await TestSystem.run { system in
            let created = try await system.client.create("m1", "plain-1")
            #expect(created.status == 201)
            #expect(try await system.client.pay(try #require(created["order_id"]), "p").status == 200)
        }
    }
}
