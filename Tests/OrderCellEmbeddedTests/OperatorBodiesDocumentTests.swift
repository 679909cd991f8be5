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
        var inBody = false
        var propertiesIndent: Int?
        var fields: Set<String> = []
        for line in lines[(index + 1)...] {
            let indent = line.prefix { $0 == " " }.count
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if indent <= 4 { break }  // the next operation or path
            if indent == 6 { inBody = text == "requestBody:"; continue }
            guard inBody else { continue }
            if propertiesIndent == nil, text.hasPrefix("schema: { $ref: '#/components/schemas/") {
                let name = text.dropFirst("schema: { $ref: '#/components/schemas/".count).prefix { $0 != "'" }
                return componentFields(String(name), lines)
            }
            if let propertiesIndent {
                if indent <= propertiesIndent { break }
                if indent == propertiesIndent + 2, let colon = text.firstIndex(of: ":") { fields.insert(String(text[..<colon])) }
            } else if text == "properties:" {
                propertiesIndent = indent
            }
        }
        return fields
    }

    /// The top-level properties of the schema `components.schemas.<name>`.
    static func componentFields(_ name: String, _ lines: [String]) -> Set<String>? {
        guard let start = lines.firstIndex(of: "    \(name):") else { return nil }
        var propertiesIndent: Int?
        var fields: Set<String> = []
        for line in lines[(start + 1)...] {
            let indent = line.prefix { $0 == " " }.count
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if indent <= 4 { break }
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
        ]
        for (operation, fields) in bodies {
            let documented = try #require(Self.documentedBodyFields(operation), "\(operation) is not in docs/openapi.yaml")
            #expect(documented == fields, "\(operation): the document lists \(documented.sorted()), the typed request has \(fields.sorted())")
        }
    }
}
