import OrderModel

/// Writes an order as JSON by hand: orders are the answer of almost every
/// call, and a Codable encoder costs several times more per response
/// (measured with `ordercell bench`, see docs/performance.md). The fields
/// and names are those of `OrderView`; absent optionals are left out. One
/// writer for every boundary that shows an order: the public API's answers
/// and the merchant notifications.
public enum OrderJSON {
    public static func write(_ order: Order, to json: inout String) {
        json += "{\"order_id\":\""
        json += order.id.description
        json += "\",\"cell_id\":"
        json += String(order.cellID.rawValue)
        json += ",\"merchant_id\":"
        JSONText.appendQuoted(order.merchantID, to: &json)
        json += ",\"out_trade_no\":"
        JSONText.appendQuoted(order.outTradeNo, to: &json)
        json += ",\"amount\":"
        json += String(order.amount)
        json += ",\"currency\":\""
        json += order.currency.code
        json += "\""
        if let description = order.description {
            json += ",\"description\":"
            JSONText.appendQuoted(description, to: &json)
        }
        json += ",\"status\":\""
        json += order.status.rawValue
        json += "\",\"refunded_amount\":"
        json += String(order.refundedAmount)
        if let paymentID = order.paymentID {
            json += ",\"payment_id\":"
            JSONText.appendQuoted(paymentID, to: &json)
        }
        if let closeReason = order.closeReason {
            json += ",\"close_reason\":\""
            json += closeReason.rawValue
            json += "\""
        }
        timestamp("created_at", order.createdAt, &json)
        timestamp("expires_at", order.expiresAt, &json)
        if let paidAt = order.paidAt { timestamp("paid_at", paidAt, &json) }
        if let closedAt = order.closedAt { timestamp("closed_at", closedAt, &json) }
        timestamp("updated_at", order.updatedAt, &json)
        json += ",\"key_status\":\""
        json += order.keyStatus.rawValue
        json += "\"}"
    }

    private static func timestamp(_ name: String, _ value: Timestamp, _ json: inout String) {
        json += ",\""
        json += name
        json += "\":\""
        json += value.rfc3339
        json += "\""
    }
}
