import Foundation
import OrderModel
import OrderProxy
import Testing

@Suite("OpenAPI document")
struct OpenAPIDocumentTests {
    static let document: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)) ?? ""
    }()

    /// `(METHOD, path)` of every operation under `paths:` (two-space path keys, four-space method keys).
    static func documentedRoutes() -> Set<String> {
        var routes: Set<String> = []
        var path: String?
        var inPaths = false
        for line in document.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "paths:" { inPaths = true; continue }
            if inPaths, let first = line.first, first != " " { inPaths = false }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":"), let path {
                let method = line.trimmingCharacters(in: .whitespaces).dropLast()
                if ["get", "post", "put", "delete", "patch"].contains(method) { routes.insert("\(method.uppercased()) \(path)") }
            }
        }
        return routes
    }

    @Test func documentDescribesExactlyTheServedRoutes() async throws {
        try #require(!Self.document.isEmpty, "docs/openapi.yaml is missing")
        try await TestSystem.run { system in
            let served = Set(system.system.buildRouterAndRoutes().routes.map(\.description))
            #expect(served == Self.documentedRoutes(), "served but undocumented: \(served.subtracting(Self.documentedRoutes())); documented but not served: \(Self.documentedRoutes().subtracting(served))")
        }
    }

    @Test func documentListsEveryErrorCode() throws {
        for code in OrderErrorCode.allCases {
            #expect(Self.document.contains(code.rawValue), "docs/openapi.yaml does not list \(code.rawValue)")
        }
        for status in OrderStatus.allCases {
            #expect(Self.document.contains(status.rawValue))
        }
    }
}
