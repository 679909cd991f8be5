import CellRouting
import Foundation
import OrderModel
import Testing

@Suite("PostgreSQL URLs")
struct PostgresEndpointTests {
    @Test("user, password, host, port and database are read; user and password may be percent-encoded")
    func parsing() throws {
        let plain = try #require(PostgresEndpoint(url: "postgres://ordercell@10.0.0.5:5433/cell_1"))
        #expect(plain == PostgresEndpoint(host: "10.0.0.5", port: 5433, database: "cell_1", username: "ordercell"))
        let defaultPort = try #require(PostgresEndpoint(url: "postgresql://u:secret@db/control"))
        #expect(defaultPort.port == 5432 && defaultPort.password == "secret" && defaultPort.database == "control")
        let encoded = try #require(PostgresEndpoint(url: "postgres://us%40er:p%3Aa%2Fss%40w%C3%B6rd@db:5432/cell_2"))
        #expect(encoded.username == "us@er" && encoded.password == "p:a/ss@wörd" && encoded.host == "db")
        // The password is never printed.
        #expect(encoded.description == "us@er@db:5432/cell_2")
    }

    @Test("what is not a PostgreSQL URL is refused")
    func refused() {
        for text in ["mysql://u@h/db", "postgres://h:5432/db", "postgres://u@h:port/db", "postgres://u@h:5432", "postgres://u:%zz@h/db", "postgres://u%4@h/db", "u@h/db"] {
            #expect(PostgresEndpoint(url: text) == nil, "\(text)")
        }
    }

    @Test("in a routing table a storage server is its URL, credentials percent-encoded; a bad one fails the table naming why")
    func inTheRoutingTable() throws {
        let server = PostgresEndpoint(host: "db", port: 5433, database: "cell_1", username: "us@er", password: "p:a/ss")
        let json = try JSONEncoder().encode(CellStorageRoute(primary: server))
        #expect(String(decoding: json, as: UTF8.self).contains(#"postgres:\/\/us%40er:p%3Aa%2Fss@db:5433\/cell_1"#))
        #expect(try JSONDecoder().decode(CellStorageRoute.self, from: json).primary == server)
        do {
            _ = try JSONDecoder().decode(CellStorageRoute.self, from: Data(#"{"primary":"postgres://db:5432/cell_1","replicas":[]}"#.utf8))
            Issue.record("a storage server without a user was read")
        } catch let DecodingError.dataCorrupted(context) {
            #expect(context.codingPath.map(\.stringValue) == ["primary"])
            #expect(context.debugDescription.contains("names its user"))
        }
        #expect(throws: OrderError.self) { try PostgresEndpoint(parsing: "postgres://u@db:70000/cell_1") }
    }
}
