import Hummingbird
import NIOCore
import OrderHTTP
import OrderModel

extension OrderJSON {
    /// A `200`/`201` response carrying one order.
    static func response(_ order: Order, status: HTTPResponse.Status = .ok, location: String? = nil) -> Response {
        var json = ""
        json.reserveCapacity(512)
        write(order, to: &json)
        var headers: HTTPFields = [.contentType: "application/json"]
        if let location { headers[.location] = location }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: json)))
    }
}
