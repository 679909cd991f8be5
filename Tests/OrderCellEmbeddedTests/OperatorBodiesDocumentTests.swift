import CellRouting
import ControlPlane
import Foundation
import Testing

/// The operator part of docs/openapi.yaml against the typed control API: each
/// operator change's request body lists exactly the fields of the Codable
/// type that `ordercell admin`, the proxies and the control plane share. A
/// field added to, renamed in or dropped from a request type without the
/// document following fails here.
@Suite("Operator request bodies in the document")
struct OperatorBodiesDocumentTests {
    /// The top-level properties of an operation's request body schema.
    static func documentedBodyFields(_ operation: String) -> Set<String>? {
        let parts = operation.split(separator: " ", maxSplits: 1).map(String.init)
        let (method, path) = (parts[0].lowercased(), parts[1])
        let lines = OpenAPIDocumentTests.document.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let pathLine = lines.firstIndex(of: "  \(path):") else { return nil }
        var index = pathLine + 1
        // The operation under the path, before the next path.
        while index < lines.count, lines[index] != "    \(method):" {
            if lines[index].hasPrefix("  /") { return nil }
            index += 1
        }
        // The request body's schema: inline, or a `$ref` to a shared one.
        var inBody = false
        for (offset, line) in lines[(index + 1)...].enumerated() {
            let indent = line.prefix { $0 == " " }.count
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if indent <= 4 { return [] }  // the next operation or path: no body
            if indent == 6 { inBody = text == "requestBody:"; continue }
            guard inBody else { continue }
            if text.hasPrefix("schema: { $ref: '#/components/schemas/") {
                let name = text.dropFirst("schema: { $ref: '#/components/schemas/".count).prefix { $0 != "'" }
                guard let start = lines.firstIndex(of: "    \(name):") else { return nil }
                return properties(in: lines, after: start)
            }
            if text.hasPrefix("schema:") { return properties(in: lines, after: index + 1 + offset) }
        }
        return []
    }

    /// The names one level under the first `properties:` below the line at `start`, within its block.
    static func properties(in lines: [String], after start: Int) -> Set<String> {
        let blockIndent = lines[start].prefix { $0 == " " }.count
        var propertiesIndent: Int?
        var fields: Set<String> = []
        for line in lines[(start + 1)...] {
            let indent = line.prefix { $0 == " " }.count
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if indent <= blockIndent { break }
            if let propertiesIndent {
                if indent <= propertiesIndent { break }
                if indent == propertiesIndent + 2, let colon = text.firstIndex(of: ":") { fields.insert(String(text[..<colon])) }
            } else if text == "properties:" {
                propertiesIndent = indent
            }
        }
        return fields
    }

    /// A request with every field set, encoded: the fields its type has.
    static func fields(of value: some Encodable) throws -> Set<String> {
        let object = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(value)) as? [String: Any]
        return Set((object ?? [:]).keys)
    }

    @Test func everyOperatorChangeDocumentsExactlyTheFieldsOfItsTypedRequest() throws {
        let reason = ReasonRequest(reason: "r", expectedVersion: 1)
        let storage = CellStorageRoute(primary: try PostgresEndpoint(parsing: "postgres://u@db:5432/c"))
        let bodies: [(operation: String, fields: Set<String>)] = [
            (
                "POST /control/admin/cells",
                try Self.fields(
                    of: AddCellRequest(
                        cellID: 5, partition: "normal", state: "ACTIVE", weight: 1, endpoints: ["h:1"], storage: storage, versionLabel: "v",
                        reason: "r", expectedVersion: 1
                    )
                )
            ),
            (
                "PATCH /control/admin/cells/{cell_id}",
                try Self.fields(
                    of: CellPatchRequest(partition: "p", state: "ACTIVE", weight: 1, endpoints: ["h:1"], versionLabel: "v", reason: "r", expectedVersion: 1)
                )
            ),
            ("PUT /control/admin/cells/{cell_id}/blacklist", try Self.fields(of: BlacklistRequest(reason: "r", expiresInSeconds: 1, expectedVersion: 1))),
            ("DELETE /control/admin/cells/{cell_id}/blacklist", try Self.fields(of: reason)),
            ("PUT /control/admin/partitions/{partition}", try Self.fields(of: PartitionRequest(kind: "vip", spillTo: "normal", reason: "r", expectedVersion: 1))),
            ("PUT /control/admin/merchants/{merchant_id}/partition", try Self.fields(of: MerchantPartitionRequest(partition: "vip", reason: "r", expectedVersion: 1))),
            ("DELETE /control/admin/merchants/{merchant_id}/partition", try Self.fields(of: reason)),
            ("PUT /control/admin/config", try Self.fields(of: ConfigRequest(policy: TrafficPolicy(), reason: "r", expectedVersion: 1))),
            ("POST /control/admin/releases/{version}/rollback", try Self.fields(of: reason)),
            ("POST /control/admin/index-slots/move", try Self.fields(of: IndexSlotMoveRequest(first: 0, last: 1, to: 2, reason: "r", expectedVersion: 1))),
        ]
        for (operation, fields) in bodies {
            let documented = try #require(Self.documentedBodyFields(operation), "\(operation) is not in docs/openapi.yaml")
            #expect(documented == fields, "\(operation): the document lists \(documented.sorted()), the typed request has \(fields.sorted())")
        }
    }
}
