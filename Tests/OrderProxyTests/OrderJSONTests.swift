import Foundation
import OrderHTTP
import OrderModel
import Testing

@testable import OrderProxy

@Suite("Order JSON")
struct OrderJSONTests {
    static func order(description: String?, paid: Bool) throws -> Order {
        let now = Timestamp(millisecondsSinceEpoch: 1_795_301_599_123)
        var order = Order(
            id: try OrderID(cell: CellID(3)!, createdAt: now, sequence: 77), merchantID: "m-1", outTradeNo: "t.1|*@",
            amount: 1999, currency: Currency(code: "JPY")!, description: description, createdAt: now, expiresAt: now.adding(seconds: 60)
        )
        if paid {
            order.status = .partiallyRefunded
            order.paymentID = "pay-1"
            order.paidAt = now.adding(seconds: 1)
            order.refundedAmount = 5
        } else {
            order.status = .closed
            order.closeReason = .expired
            order.closedAt = now.adding(seconds: 61)
        }
        return order
    }

    @Test(arguments: [nil, "tea", "quote \" backslash \\ newline \n tab \t control \u{01} 茶 🍵"], [true, false])
    func handWrittenJSONMatchesTheCodableView(description: String?, paid: Bool) throws {
        let order = try Self.order(description: description, paid: paid)
        var text = ""
        OrderJSON.write(order, to: &text)
        let handWritten = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary
        let codable = try JSONSerialization.jsonObject(with: JSONEncoder().encode(OrderView(order))) as? NSDictionary
        #expect(handWritten != nil)
        #expect(handWritten == codable)
    }
}
