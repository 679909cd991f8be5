import Testing

@testable import CellStorage

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
}
