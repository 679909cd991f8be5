import Foundation
import NIOHTTP1
import OrderModel
import Testing

/// The order flows every deployment must pass, over real HTTP: the same
/// code runs against the embedded system and against a local cluster.
public enum OrderFlows {
    /// Create, repeat, conflict, pay (and repeats), refund in parts, refund the rest.
    public static func lifecycle(_ api: APIClient, prefix: String) async throws {
        let created = try await api.create("m1", "\(prefix)-life-1", amount: 1000)
        #expect(created.status == 201)
        #expect(created["status"] == "CREATED" && created["refunded_amount"] == "0")
        for field in ["order_id", "cell_id", "merchant_id", "out_trade_no", "amount", "currency", "status", "refunded_amount", "created_at", "expires_at"] {
            #expect(created.json[field] != nil, "order field \(field)")
        }
        let id = try #require(created["order_id"])
        let repeated = try await api.create("m1", "\(prefix)-life-1", amount: 1000)
        #expect(repeated.status == 200 && repeated["order_id"] == id)
        let conflict = try await api.create("m1", "\(prefix)-life-1", amount: 999)
        #expect(conflict.status == 409 && conflict.code == "out_trade_no_conflict")

        let fetched = try await api.send(.GET, "/v1/orders/\(id)")
        #expect(fetched.status == 200 && fetched["order_id"] == id)
        #expect(try await api.send(.GET, "/v1/orders/\(id)?consistency=eventual").status == 200)

        let paid = try await api.pay(id, "pay-1")
        #expect(paid.status == 200 && paid["status"] == "PAID" && paid["payment_id"] == "pay-1")
        #expect(try await api.pay(id, "pay-1").status == 200, "a repeated payment is idempotent")
        let secondPayment = try await api.pay(id, "pay-2")
        #expect(secondPayment.status == 409 && secondPayment.code == "invalid_state")
        let closePaid = try await api.send(.POST, "/v1/orders/\(id)/close")
        #expect(closePaid.status == 409 && closePaid.code == "invalid_state")

        let partial = try await api.refund(id, "r-1", amount: 300)
        #expect(partial.status == 201)
        #expect((partial.json["order"] as? [String: Any])?["status"] as? String == "PARTIALLY_REFUNDED")
        #expect(try await api.refund(id, "r-1", amount: 300).status == 200, "a repeated refund is idempotent")
        let changedRepeat = try await api.refund(id, "r-1", amount: 301)
        #expect(changedRepeat.status == 409 && changedRepeat.code == "refund_id_conflict")
        let tooMuch = try await api.refund(id, "r-2", amount: 701)
        #expect(tooMuch.status == 409 && tooMuch.code == "refund_exceeds_amount")
        let rest = try await api.refund(id, "r-2", amount: 700)
        #expect(rest.status == 201)
        let order = rest.json["order"] as? [String: Any]
        #expect(order?["status"] as? String == "REFUNDED" && order?["refunded_amount"] as? Int == 1000)
        let afterFull = try await api.refund(id, "r-3", amount: 1)
        #expect(afterFull.status == 409 && afterFull.code == "refund_exceeds_amount")

        let refunds = try await api.send(.GET, "/v1/orders/\(id)/refunds")
        #expect((refunds.json["refunds"] as? [[String: Any]])?.compactMap { $0["refund_id"] as? String } == ["r-1", "r-2"])
        let events = try await api.send(.GET, "/v1/orders/\(id)/events")
        let kinds = (events.json["events"] as? [[String: Any]])?.compactMap { $0["type"] as? String }
        #expect(kinds == ["ORDER_CREATED", "ORDER_PAID", "ORDER_REFUNDED", "ORDER_REFUNDED"])
    }

    /// Close, close again, and every illegal transition with its 409 code.
    public static func closeAndIllegalTransitions(_ api: APIClient, prefix: String) async throws {
        let id = try #require(try await api.create("m1", "\(prefix)-close-1").self["order_id"])
        let mismatch = try await api.pay(id, "p", amount: 999)
        #expect(mismatch.status == 409 && mismatch.code == "amount_mismatch")
        let unpaidRefund = try await api.refund(id, "r", amount: 1)
        #expect(unpaidRefund.status == 409 && unpaidRefund.code == "invalid_state")
        let closed = try await api.send(.POST, "/v1/orders/\(id)/close")
        #expect(closed.status == 200 && closed["status"] == "CLOSED" && closed["close_reason"] == "MERCHANT")
        #expect(try await api.send(.POST, "/v1/orders/\(id)/close").status == 200, "closing twice is idempotent")
        let payClosed = try await api.pay(id, "p")
        #expect(payClosed.status == 409 && payClosed.code == "invalid_state")
        let refundClosed = try await api.refund(id, "r", amount: 1)
        #expect(refundClosed.status == 409 && refundClosed.code == "invalid_state")
    }

    /// Eight clients racing the same payment and refund ids.
    public static func racing(_ api: APIClient, prefix: String) async throws {
        let id = try #require(try await api.create("m1", "\(prefix)-race-1", amount: 1000).self["order_id"])
        // 8 clients race the same payment id: every answer is the one payment.
        let payments = try await concurrently(8, width: 8) { _ in try await api.pay(id, "pay-same") }
        #expect(payments.allSatisfy { $0.status == 200 && $0["payment_id"] == "pay-same" })
        // 8 clients race ten refund ids of 150 each: only six fit in 1000.
        let refunds = try await concurrently(80, width: 8) { index in try await api.refund(id, "r-\(index % 10)", amount: 150) }
        #expect(refunds.allSatisfy { [200, 201, 409].contains($0.status) })
        #expect(refunds.filter { $0.status == 201 }.count == 6)
        let order = try await api.send(.GET, "/v1/orders/\(id)")
        #expect(order.json["refunded_amount"] as? Int == 900)
        let listed = try await api.send(.GET, "/v1/orders/\(id)/refunds").json["refunds"] as? [[String: Any]]
        #expect(listed?.count == 6 && listed?.reduce(0) { $0 + ($1["amount"] as? Int ?? 0) } == 900)

        // 8 clients race different payment ids on one order: exactly one wins.
        let other = try #require(try await api.create("m1", "\(prefix)-race-2", amount: 1000).self["order_id"])
        let contested = try await concurrently(8, width: 8) { index in try await api.pay(other, "pay-\(index)") }
        #expect(contested.filter { $0.status == 200 }.count == 1)
        #expect(contested.filter { $0.status == 409 && $0.code == "invalid_state" }.count == 7)
        let events = try await api.send(.GET, "/v1/orders/\(other)/events").json["events"] as? [[String: Any]]
        #expect(events?.filter { $0["type"] as? String == "ORDER_PAID" }.count == 1)
    }

    /// Every kind of bad input is a typed problem response, never a 500.
    public static func badInput(_ api: APIClient, prefix: String) async throws {
        let id = try #require(try await api.create("m1", "\(prefix)-valid-1").self["order_id"])
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

enum OrderIDText {
    /// A valid id like `id` but in another cell.
    static func withCell(_ cell: Int, like id: String) throws -> String {
        let parsed = try OrderID(parsing: id)
        return try OrderID(cell: CellID(cell)!, createdAt: parsed.createdAt, sequence: parsed.sequence).description
    }
}
