import Foundation
import NIOHTTP1
import Testing

@Suite("Bad input gets problem responses")
struct BadInputTests {
    @Test func everyBadRequestIsATypedProblemNeverA500() async throws {
        try await TestSystem.run { system in
            let api = system.client
            let id = try #require(try await api.create("m1", "valid-1").self["order_id"])
            var typo = Array(id)
            typo[10] = typo[10] == "1" ? "2" : "1"
            let long65 = String(repeating: "x", count: 65)
            let cases: [(HTTPMethod, String, String?, Int, String)] = [
                (.POST, "/v1/orders", "{bad json", 400, "invalid_request"),
                (.POST, "/v1/orders", nil, 400, "invalid_request"),
                (.POST, "/v1/orders", "[]", 400, "invalid_request"),
                (.POST, "/v1/orders", "null", 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"out_trade_no":"a","amount":1,"currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","amount":1,"currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":1}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":0,"currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":-100,"currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":1.5,"currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":"100","currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":1e30,"currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":1000000000000,"currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":1,"currency":"XXY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":1,"currency":"cny"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":null,"out_trade_no":"a","amount":1,"currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"\#(long65)","amount":1,"currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"\#(String(repeating: "m", count: 33))","out_trade_no":"a","amount":1,"currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a b","amount":1,"currency":"CNY"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":1,"currency":"CNY","description":"\#(String(repeating: "d", count: 257))"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":1,"currency":"CNY","expire_seconds":0}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":1,"currency":"CNY","expire_seconds":99999999}"#, 400, "invalid_request"),
                (.POST, "/v1/orders", #"{"merchant_id":"m","out_trade_no":"a","amount":1,"currency":"CNY","description":"\#(String(repeating: "d", count: 20_000))"}"#, 413, "payload_too_large"),
                (.GET, "/v1/orders/123", nil, 400, "invalid_order_id"),
                (.GET, "/v1/orders/\(String(repeating: "a", count: 28))", nil, 400, "invalid_order_id"),
                (.GET, "/v1/orders/\(String(typo))", nil, 400, "invalid_order_id"),
                (.GET, "/v1/orders/\(id)0", nil, 400, "invalid_order_id"),
                (.GET, "/v1/orders/\(id)?consistency=sometimes", nil, 400, "invalid_request"),
                (.POST, "/v1/orders/123/pay", #"{"payment_id":"p","amount":1000}"#, 400, "invalid_order_id"),
                (.POST, "/v1/orders/\(id)/pay", "{}", 400, "invalid_request"),
                (.POST, "/v1/orders/\(id)/pay", #"{"payment_id":"p","amount":0}"#, 400, "invalid_request"),
                (.POST, "/v1/orders/\(id)/pay", #"{"payment_id":"\#(long65)","amount":1000}"#, 400, "invalid_request"),
                (.POST, "/v1/orders/\(id)/refunds", #"{"refund_id":"r","amount":-1}"#, 400, "invalid_request"),
                (.POST, "/v1/orders/\(id)/refunds", #"{"refund_id":"r"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders/\(id)/refunds", #"{"refund_id":"r","amount":1,"reason":"\#(String(repeating: "z", count: 300))"}"#, 400, "invalid_request"),
                (.POST, "/v1/orders/\(id)/close/extra", nil, 404, "not_found"),
                (.GET, "/v2/orders", nil, 404, "not_found"),
                (.GET, "/admin/cells", nil, 401, "unauthorized"),
            ]
            for (method, path, body, status, code) in cases {
                let result = try await api.send(method, path, body)
                #expect(result.status == status, "\(method) \(path.prefix(60)) \(body?.prefix(80) ?? "") → \(result.status) \(result.text.prefix(200))")
                #expect(result.code == code, "\(method) \(path.prefix(60)) \(body?.prefix(80) ?? "")")
                #expect(result.contentType == "application/problem+json")
                #expect(result.json["detail"] is String && result.json["status"] as? Int == status)
            }
            // A well-formed id of a cell that does not exist is not found, not an error.
            let unknownCell = try OrderIDText.withCell(9999, like: id)
            let missing = try await api.send(.GET, "/v1/orders/\(unknownCell)")
            #expect(missing.status == 404 && missing.code == "order_not_found")
            let wrongToken = try await APIClient(base: api.base, adminToken: "nope").send(.GET, "/admin/cells", admin: true)
            #expect(wrongToken.status == 401 && wrongToken.code == "unauthorized")
        }
    }
}

import OrderModel

enum OrderIDText {
    /// A valid id like `id` but in another cell.
    static func withCell(_ cell: Int, like id: String) throws -> String {
        let parsed = try OrderID(parsing: id)
        return try OrderID(cell: CellID(cell)!, createdAt: parsed.createdAt, sequence: parsed.sequence).description
    }
}
