import OrderHTTP
import OrderModel

/// The JSON a merchant receives: the event (its id, the merchant
/// deduplicates by; its type; when it happened; what it moved) and the
/// order as it stood when the notifier took the event from the feed.
///
/// ```json
/// {"event_id":"…-2","event_type":"ORDER_PAID","occurred_at":"…","amount":1000,"payment_id":"…",
///  "status_after":"PAID","order_id":"…","order":{…as GET /v1/orders/{id} answers…}}
/// ```
///
/// An expiry is told as `ORDER_CLOSED`, its order's `close_reason` `EXPIRED`:
/// for a merchant both end the order unpaid.
enum NotificationBody {
    /// The events merchants are told of.
    static func notifies(_ kind: OrderEventKind) -> Bool {
        switch kind {
        case .paid, .refunded, .closed, .expired: return true
        case .created: return false
        }
    }

    static func eventType(_ kind: OrderEventKind) -> String {
        kind == .expired ? OrderEventKind.closed.rawValue : kind.rawValue
    }

    /// `order` nil: the order is gone (purged); the event alone is told.
    static func json(_ event: FeedEvent, order: Order?) -> String {
        var json = "{\"event_id\":"
        JSONText.appendQuoted(event.id, to: &json)
        json += ",\"event_type\":\"" + eventType(event.event.kind) + "\""
        json += ",\"occurred_at\":\"" + event.event.at.rfc3339 + "\""
        if let amount = event.event.amount { json += ",\"amount\":" + String(amount) }
        if let reference = event.event.reference {
            json += event.event.kind == .refunded ? ",\"refund_id\":" : ",\"payment_id\":"
            JSONText.appendQuoted(reference, to: &json)
        }
        json += ",\"status_after\":\"" + event.event.statusAfter.rawValue + "\""
        json += ",\"order_id\":\"" + event.event.orderID.description + "\""
        if let order {
            json += ",\"order\":"
            OrderJSON.write(order, to: &json)
        }
        json += "}"
        return json
    }
}
