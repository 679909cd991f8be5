import Foundation
import OrderHTTP
import OrderModel
import RequestJSON

/// `POST /v1/orders` body.
struct CreateOrderBody: JSONBodyDecodable {
    var merchantID: String
    var outTradeNo: String
    var amount: Int64
    var currency: String
    var description: String?
    var expireSeconds: Int64?

    init(json: JSONObjectReader) throws(OrderError) {
        merchantID = try json.string("merchant_id")
        outTradeNo = try json.string("out_trade_no")
        amount = try json.int64("amount", unit: "minor units")
        currency = try json.string("currency")
        description = try json.stringIfPresent("description")
        expireSeconds = try json.int64IfPresent("expire_seconds", unit: "seconds")
    }

    func validated() throws(OrderError) -> CreateOrderRequest {
        try CreateOrderRequest(
            merchantID: merchantID, outTradeNo: outTradeNo, amount: amount, currency: currency,
            description: description, expireSeconds: expireSeconds
        )
    }
}

/// `POST /v1/orders/{order_id}/pay` body.
struct PayBody: JSONBodyDecodable {
    var paymentID: String
    var amount: Int64

    init(json: JSONObjectReader) throws(OrderError) {
        paymentID = try json.string("payment_id")
        amount = try json.int64("amount", unit: "minor units")
    }
}

/// `POST /v1/orders/{order_id}/refunds` body.
struct RefundBody: JSONBodyDecodable {
    var refundID: String
    var amount: Int64
    var reason: String?

    init(json: JSONObjectReader) throws(OrderError) {
        refundID = try json.string("refund_id")
        amount = try json.int64("amount", unit: "minor units")
        reason = try json.stringIfPresent("reason")
    }
}

/// An order as the API shows it.
struct OrderView: Encodable {
    var orderID: String
    var cellID: Int
    var merchantID: String
    var outTradeNo: String
    var amount: Int64
    var currency: String
    var description: String?
    var status: String
    var refundedAmount: Int64
    var paymentID: String?
    var closeReason: String?
    var createdAt: String
    var expiresAt: String
    var paidAt: String?
    var closedAt: String?
    var updatedAt: String
    var keyStatus: String

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id", cellID = "cell_id", merchantID = "merchant_id", outTradeNo = "out_trade_no"
        case amount, currency, description, status
        case refundedAmount = "refunded_amount", paymentID = "payment_id", closeReason = "close_reason"
        case createdAt = "created_at", expiresAt = "expires_at", paidAt = "paid_at", closedAt = "closed_at"
        case updatedAt = "updated_at", keyStatus = "key_status"
    }

    init(_ order: Order) {
        orderID = order.id.description
        cellID = Int(order.cellID.rawValue)
        merchantID = order.merchantID
        outTradeNo = order.outTradeNo
        amount = order.amount
        currency = order.currency.code
        description = order.description
        status = order.status.rawValue
        refundedAmount = order.refundedAmount
        paymentID = order.paymentID
        closeReason = order.closeReason?.rawValue
        createdAt = order.createdAt.rfc3339
        expiresAt = order.expiresAt.rfc3339
        paidAt = order.paidAt?.rfc3339
        closedAt = order.closedAt?.rfc3339
        updatedAt = order.updatedAt.rfc3339
        keyStatus = order.keyStatus.rawValue
    }
}

/// A refund as the API shows it.
struct RefundView: Encodable {
    var refundID: String
    var orderID: String
    var amount: Int64
    var reason: String?
    var createdAt: String

    enum CodingKeys: String, CodingKey {
        case refundID = "refund_id", orderID = "order_id", amount, reason, createdAt = "created_at"
    }

    init(_ refund: Refund) {
        refundID = refund.refundID
        orderID = refund.orderID.description
        amount = refund.amount
        reason = refund.reason
        createdAt = refund.createdAt.rfc3339
    }
}

/// The answer of a refund: the refund and the order after it.
struct RefundResultView: Encodable {
    var refund: RefundView
    var order: OrderView
}

struct RefundListView: Encodable {
    var refunds: [RefundView]
}

/// One audit-trail entry as the API shows it.
struct EventView: Encodable {
    var sequence: Int
    var type: String
    var at: String
    var amount: Int64?
    var reference: String?
    var statusAfter: String

    enum CodingKeys: String, CodingKey { case sequence, type, at, amount, reference, statusAfter = "status_after" }

    init(_ event: OrderEvent) {
        sequence = event.sequence
        type = event.kind.rawValue
        at = event.at.rfc3339
        amount = event.amount
        reference = event.reference
        statusAfter = event.statusAfter.rawValue
    }
}

struct EventListView: Encodable {
    var orderID: String
    var events: [EventView]
    enum CodingKeys: String, CodingKey { case orderID = "order_id", events }
}

/// The API's JSON of what a cell answered, for tools that print it
/// (`ordercell admin cell call`): the same documents the HTTP API serves.
public enum OrderAPIJSON {
    public static func order(_ order: Order) -> String {
        var json = ""
        OrderJSON.write(order, to: &json)
        return json
    }

    public static func refunds(_ refunds: [Refund]) throws -> String {
        String(decoding: try HTTPBodies.encoder.encode(RefundListView(refunds: refunds.map(RefundView.init))), as: UTF8.self)
    }

    public static func events(_ events: [OrderEvent], of id: OrderID) throws -> String {
        String(decoding: try HTTPBodies.encoder.encode(EventListView(orderID: id.description, events: events.map(EventView.init))), as: UTF8.self)
    }

    /// One event of a cell's feed, on one line: its position, id, order and merchant, and the event as the API shows it.
    public static func feedLine(_ item: FeedEvent) throws -> String {
        String(decoding: try HTTPBodies.encoder.encode(FeedEventView(item)), as: UTF8.self)
    }
}

/// One event of a cell's feed as a tool prints it.
struct FeedEventView: Encodable {
    var position: String
    var eventID: String
    var orderID: String
    var merchantID: String
    var event: EventView

    enum CodingKeys: String, CodingKey { case position, eventID = "event_id", orderID = "order_id", merchantID = "merchant_id", event }

    init(_ item: FeedEvent) {
        position = item.position.description
        eventID = item.id
        orderID = item.event.orderID.description
        merchantID = item.merchantID
        event = EventView(item.event)
    }
}
