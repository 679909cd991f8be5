import Foundation
import OrderCellTestSupport
import Testing

/// Every served route, probed with the inputs that reach its refusals —
/// each role, unknown and out-of-range ids, missing, empty, malformed and
/// out-of-range bodies — answers only statuses docs/openapi.yaml lists for
/// it, every refusal as problem+json. A route given a new refusal, or a
/// document that drops one, fails here, without a schemathesis run.
@Suite("Documented statuses")
struct DocumentedStatusesTests {
    /// `"METHOD path"` → the statuses listed under its `responses:`.
    static func documentedStatuses() -> [String: Set<Int>] {
        var statuses: [String: Set<Int>] = [:]
        var path: String?
        var operation: String?
        var inResponses = false
        for line in OpenAPIDocumentTests.document.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
                operation = nil
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":"), let path {
                let method = line.trimmingCharacters(in: .whitespaces).dropLast().uppercased()
                operation = "\(method) \(path)"
                inResponses = false
            } else if line.hasPrefix("      responses:") {
                inResponses = true
            } else if line.hasPrefix("      "), !line.hasPrefix("       ") {
                inResponses = false
            } else if inResponses, let operation, line.hasPrefix("        "), !line.hasPrefix("         "),
                let code = Int(line.trimmingCharacters(in: .whitespaces).prefix(5).filter(\.isNumber))
            {
                statuses[operation, default: []].insert(code)
            }
            if let first = line.first, first != " ", line != "paths:" { path = nil }
        }
        return statuses
    }

    /// Values for each path parameter: one that exists, ones that do not, out of range, not a number.
    static let parameterProbes: [String: [String]] = [
        "{cell_id}": ["1", "99", "10000", "x"],
        "{version}": ["1", "0", "424242", "x"],
        "{partition}": ["normal", "nowhere", "bad%20name"],
        "{merchant_id}": ["m1", "vip-merchant"],
        "{order_id}": ["1000226112122531900000000013", "12345"],
    ]

    static let bodies: [String?] = [nil, "{}", "not json", #"{"expected_version":-1,"reason":"probe"}"#, #"{"weight":5000}"#, "[]"]

    static func concrete(_ path: String) -> [String] {
        var paths = [path]
        for (parameter, values) in parameterProbes where path.contains(parameter) {
            paths = paths.flatMap { path in values.map { path.replacingOccurrences(of: parameter, with: $0) } }
        }
        return paths
    }

    @Test func everyRouteAnswersOnlyStatusesTheDocumentListsForIt() async throws {
        let documented = Self.documentedStatuses()
        try #require(!documented.isEmpty, "docs/openapi.yaml lists no responses")
        try await TestSystem.run { system in
            let routes = system.system.buildRouterAndRoutes().routes
            var undocumented: [String] = []
            var probes = 0
            for route in routes {
                let listed = documented[route.description] ?? []
                #expect(!listed.isEmpty, "\(route.description) lists no responses")
                for path in Self.concrete(route.path) {
                    // Roles are checked before bodies are read: one probe each without a token and as a viewer,
                    // every body as an operator.
                    let bodies = route.method == "GET" ? [nil] : Self.bodies
                    let probesOfPath: [(token: String?, body: String?)] = [(nil, bodies[0]), (TestSystem.viewerToken, bodies.last!)] + bodies.map { (TestSystem.adminToken, $0) }
                    for (token, body) in probesOfPath {
                        // No role check lets a probe wait: a long poll is asked not to.
                        let target = route.path.hasSuffix("/v1/routing") ? path + "?wait=0" : path
                        var client = system.client
                        client.adminToken = token
                        let result = try await client.send(HTTPMethodName(route.method), target, body, admin: token != nil)
                        probes += 1
                        if !listed.contains(result.status) {
                            undocumented.append("\(route.method) \(target) \(body ?? "(no body)") \(token == nil ? "no token" : token!): \(result.status) \(result.code ?? "")")
                        }
                        if result.status >= 400 {
                            #expect(result.contentType == "application/problem+json", "\(route.method) \(target): \(result.status) \(result.contentType ?? "")")
                        }
                    }
                }
            }
            #expect(undocumented.isEmpty, "\(undocumented.count) of \(probes) answers are not in docs/openapi.yaml: \(undocumented.prefix(12).joined(separator: "\n"))")
        }
    }

    @Test("a method not served on a path is refused with 405 and the methods it serves, HEAD answers as GET would without the body; an unknown path is 404")
    func methodNotAllowed() async throws {
        try await TestSystem.run { system in
            let port = try #require(URLComponents(string: system.client.base)?.port)
            for (request, allow) in [
                ("TRACE /healthz", "GET, HEAD"), ("QUERY /v1/orders", "POST, GET, HEAD"), ("DELETE /v1/orders", "POST, GET, HEAD"),
                ("HEAD /v1/orders/1/pay", "POST"),
                ("POST /control/admin/cells/3", "PATCH"),
            ] {
                let (text, _) = try await RawConnection.exchange(port: port, "\(request) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: .seconds(5))
                #expect(text.hasPrefix("HTTP/1.1 405"), "\(request): \(text)")
                #expect(text.lowercased().contains("allow: \(allow.lowercased())\r\n"), "\(request): \(text)")
                if request.hasPrefix("HEAD") {
                    #expect(text.hasSuffix("\r\n\r\n"), "an answer to HEAD has no body: \(text)")
                } else {
                    #expect(text.contains(#""code":"method_not_allowed""#), "\(request): \(text)")
                }
            }
            // HEAD is served wherever GET is: the GET answer's head, its length, no body.
            let (head, _) = try await RawConnection.exchange(port: port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: .seconds(5))
            #expect(head.hasPrefix("HTTP/1.1 200") && head.hasSuffix("\r\n\r\n") && !head.lowercased().contains("content-length: 0\r\n"), "\(head)")
            let unknown = try await system.client.send(.GET, "/v2/nothing")
            #expect(unknown.status == 404 && unknown.code == "not_found")
        }
    }
}
