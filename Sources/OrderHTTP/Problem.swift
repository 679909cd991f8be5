import Foundation
import Hummingbird
import Logging
import NIOCore
import OrderModel

/// Turns every error a handler throws into an `application/problem+json`
/// response with a stable `code` (RFC 9457). Nothing a client sends can
/// produce anything else; an unexpected error is logged and answered 500.
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as OrderError {
            return Problem.response(error)
        } catch let refused as OperatorTokens.Refused {
            return Problem.response(refused.error)
        } catch let error as HTTPError {
            return Problem.response(Problem.orderError(for: error))
        } catch is NIOTooManyBytesError {
            return Problem.response(OrderError(.payloadTooLarge, "the request body is larger than \(HTTPBodies.maximumBodyBytes) bytes"))
        } catch {
            logger.error("unexpected error", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            return Problem.response(OrderError(.internalError, "the server failed unexpectedly; the failure was logged"))
        }
    }
}

/// Problem documents.
public enum Problem {
    public static let contentType = "application/problem+json"

    /// The problem document of `error`, as JSON text.
    public static func json(_ error: OrderError) -> String {
        var json = "{\"type\":\"https://ordercell.dev/problems/\(error.code.rawValue)\",\"title\":"
        JSONText.appendQuoted(error.code.title, to: &json)
        json += ",\"status\":\(error.code.httpStatus),\"code\":\"\(error.code.rawValue)\",\"detail\":"
        JSONText.appendQuoted(error.detail, to: &json)
        json += "}"
        return json
    }

    public static func response(_ error: OrderError) -> Response {
        let json = json(error)
        var headers: HTTPFields = [.contentType: contentType]
        if let seconds = error.retryAfterSeconds {
            headers[.retryAfter] = String(seconds)
        } else if error.code.httpStatus == 503 || error.code.httpStatus == 429 {
            headers[.retryAfter] = "1"
        }
        return Response(
            status: HTTPResponse.Status(code: error.code.httpStatus),
            headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(string: json))
        )
    }

    public static func orderError(for error: HTTPError) -> OrderError {
        switch error.status.code {
        case 404: return OrderError(.notFound, "no such endpoint")
        case 405: return OrderError(.methodNotAllowed, "method not allowed on this endpoint")
        case 413: return OrderError(.payloadTooLarge, "the request body is too large")
        case 401: return OrderError(.unauthorized, error.body ?? "authentication required")
        case 403: return OrderError(.forbidden, error.body ?? "forbidden")
        case 409: return OrderError(.versionConflict, error.body ?? "conflict")
        case 400..<500: return OrderError(.invalidRequest, error.body ?? "bad request")
        default: return OrderError(.internalError, error.body ?? "internal error")
        }
    }
}

/// Minimal JSON text helpers for the few documents written by hand.
public enum JSONText {
    public static func appendQuoted(_ value: String, to output: inout String) {
        output.append("\"")
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": output.append("\\\"")
            case "\\": output.append("\\\\")
            case "\n": output.append("\\n")
            case "\r": output.append("\\r")
            case "\t": output.append("\\t")
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                output.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
            default: output.unicodeScalars.append(scalar)
            }
        }
        output.append("\"")
    }
}

/// How each refusal is answered over HTTP: its status and the problem
/// document's title. Here, not in the domain: the domain's codes are the
/// same over the cell protocol, which has no statuses.
extension OrderErrorCode {
    /// The HTTP status this code is answered with.
    public var httpStatus: Int {
        switch self {
        case .invalidRequest, .invalidOrderID: return 400
        case .unauthorized, .signatureMismatch, .timestampOutOfWindow, .nonceReplayed, .unknownKey, .keyRevoked, .keyExpired: return 401
        case .forbidden: return 403
        case .rateLimited: return 429
        case .orderNotFound, .notFound: return 404
        case .outTradeNoConflict, .refundIDConflict, .invalidState, .amountMismatch, .orderExpired,
            .refundExceedsAmount, .versionConflict, .alreadyExists, .duplicateOrder, .keyUnclaimed:
            return 409
        case .methodNotAllowed: return 405
        case .payloadTooLarge: return 413
        case .cellUnavailable, .noCellAvailable, .degraded, .controlPlaneUnavailable, .indexUnavailable: return 503
        case .internalError: return 500
        }
    }

    /// A short human title for the problem document.
    public var title: String {
        switch self {
        case .invalidRequest: return "Invalid request"
        case .invalidOrderID: return "Invalid order id"
        case .orderNotFound: return "Order not found"
        case .outTradeNoConflict: return "out_trade_no already used with a different request"
        case .duplicateOrder: return "Another order holds this out_trade_no"
        case .indexUnavailable: return "The merchant-key index cannot answer for this out_trade_no"
        case .keyUnclaimed: return "The order has not claimed its out_trade_no"
        case .refundIDConflict: return "refund_id already used with a different amount"
        case .invalidState: return "Operation not allowed in the order's state"
        case .amountMismatch: return "Amount does not match the order"
        case .orderExpired: return "Order expired"
        case .refundExceedsAmount: return "Refunds would exceed the order amount"
        case .cellUnavailable: return "The order's cell is unavailable"
        case .noCellAvailable: return "No cell can take new orders"
        case .unauthorized: return "Unauthorized"
        case .signatureMismatch: return "The request's signature does not match"
        case .timestampOutOfWindow: return "The request's timestamp is too far from the server's clock"
        case .nonceReplayed: return "The request's nonce was used before"
        case .unknownKey: return "Unknown access key"
        case .keyRevoked: return "The access key was revoked"
        case .keyExpired: return "The access key's rotation window is over"
        case .forbidden: return "Forbidden for this role"
        case .versionConflict: return "The change was made against an old version"
        case .alreadyExists: return "It exists already"
        case .controlPlaneUnavailable: return "The control plane cannot make changes now"
        case .rateLimited: return "Too many requests"
        case .degraded: return "Refused by a degradation switch"
        case .notFound: return "Not found"
        case .methodNotAllowed: return "Method not allowed on this endpoint"
        case .payloadTooLarge: return "Request body too large"
        case .internalError: return "Internal error"
        }
    }
}
