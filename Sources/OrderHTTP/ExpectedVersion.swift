import Foundation
import Hummingbird
import OrderModel

/// The routing version an operator's change is made against: the body's
/// `expected_version`, else an `If-Match` header. A change against any
/// other version than the current one is refused `409 version_conflict`,
/// so two operators (or a proxy and an operator) never undo each other.
public enum ExpectedVersion {
    public static func of(_ request: Request, body: UInt64?) throws(OrderError) -> UInt64? {
        if let body { return body }
        guard let header = request.headers[.ifMatch] else { return nil }
        let trimmed = header.trimmingCharacters(in: CharacterSet(charactersIn: "\" W/"))
        guard let version = UInt64(trimmed) else { throw OrderError.invalidRequest("If-Match must be a routing version number") }
        return version
    }
}
