import OrderHTTP
import OrderModel

/// The JSON a merchant receives: the event (its id, the merchant
/// deduplicates by; its type; when it happened; what it moved) and the
/// order as it stands when the notification is sent.
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

    /// The notification sent: the event, and the order as it stands now.
    static func json(eventID: String, event: OrderEvent, order: Order) -> String {
        var json = "{\"event_id\":"
        JSONText.appendQuoted(eventID, to: &json)
        json += ",\"event_type\":\"" + eventType(event.kind) + "\""
        json += ",\"occurred_at\":\"" + event.at.rfc3339 + "\""
        if let amount = event.amount { json += ",\"amount\":" + String(amount) }
        if let reference = event.reference {
            json += event.kind == .refunded ? ",\"refund_id\":" : ",\"payment_id\":"
            JSONText.appendQuoted(reference, to: &json)
        }
        json += ",\"status_after\":\"" + event.statusAfter.rawValue + "\""
        json += ",\"order_id\":\"" + event.orderID.description + "\""
        json += ",\"order\":"
        OrderJSON.write(order, to: &json)
        json += "}"
        return json
    }
}
