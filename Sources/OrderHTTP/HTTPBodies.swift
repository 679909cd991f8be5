import Foundation
import Hummingbird
import NIOCore
import OrderModel
import RequestJSON

/// A request body read by hand from its bytes with a ``JSONObjectReader``:
/// the bodies of the hot order calls, where `JSONDecoder` costs several
/// microseconds and a dozen allocations per request.
public protocol JSONBodyDecodable {
    /// Reads the fields in the order their errors should be reported.
    init(json: JSONObjectReader) throws(OrderError)
}

/// Reading JSON request bodies and writing JSON responses, with every
/// decoding failure turned into a precise `invalid_request`.
public enum HTTPBodies {
    public static let maximumBodyBytes = 16 * 1024

    /// Reads a body with its hand-written reader, on the collected bytes as they are.
    public static func decode<T: JSONBodyDecodable>(_ type: T.Type, from request: Request) async throws -> T {
        try decode(T.self, from: try await request.body.collect(upTo: maximumBodyBytes))
    }

    /// Reads a collected body with its hand-written reader; an empty body is not an object.
    public static func decode<T: JSONBodyDecodable>(_ type: T.Type, from buffer: ByteBuffer) throws(OrderError) -> T {
        guard buffer.readableBytes > 0 else {
            throw OrderError.invalidRequest("the request body must be a JSON object")
        }
        return try T(json: JSONObjectReader(buffer))
    }

    /// Reads any other body with `JSONDecoder` (operator endpoints).
    public static func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        let buffer = try await request.body.collect(upTo: maximumBodyBytes)
        guard buffer.readableBytes > 0 else {
            throw OrderError.invalidRequest("the request body must be a JSON object")
        }
        let data = Data(buffer.readableBytesView)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as OrderError {
            throw error
        } catch let error as DecodingError {
            throw OrderError.invalidRequest(describe(error, in: data))
        } catch {
            throw OrderError.invalidRequest("the request body is not valid JSON")
        }
    }

    /// Reads an optional body: an empty body decodes as `nil`.
    public static func decodeIfPresent<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T? {
        let buffer = try await request.body.collect(upTo: maximumBodyBytes)
        guard buffer.readableBytes > 0 else { return nil }
        let data = Data(buffer.readableBytesView)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw OrderError.invalidRequest(describe(error, in: data))
        }
    }

    /// Describes `error`; where the decoder could not say which field failed
    /// (Foundation reports a number that does not fit its field as "not
    /// valid JSON", with no path), finds the number in `body` and names it.
    public static func describe(_ error: DecodingError, in body: Data) -> String {
        if case .dataCorrupted(let context) = error, context.codingPath.isEmpty,
            let object = try? JSONSerialization.jsonObject(with: body), let (path, number) = unfitNumber(in: object, at: "")
        {
            return "\(path) is \(number), which does not fit the field: a whole number (not negative where it counts or numbers something) that fits in 64 bits"
        }
        return describe(error)
    }

    /// The number in a parsed body most likely to be the one that did not
    /// fit: first one beyond 64 bits, then a negative one, then a fraction
    /// (some fields take fractions: policy percentages and rates).
    static func unfitNumber(in value: Any, at path: String) -> (path: String, number: String)? {
        var beyond: (String, String)?
        var negative: (String, String)?
        var fraction: (String, String)?
        func visit(_ value: Any, _ path: String) {
            switch value {
            case let object as [String: Any]:
                for key in object.keys.sorted() { visit(object[key]!, path.isEmpty ? key : "\(path).\(key)") }
            case let array as [Any]:
                for (index, element) in array.enumerated() { visit(element, "\(path)[\(index)]") }
            case let number as NSNumber:  // true and false read as 1 and 0, which always fit
                let double = number.doubleValue
                let found = (path, number.stringValue)
                if double >= 18_446_744_073_709_551_616 || double < -9_223_372_036_854_775_808 {
                    if beyond == nil { beyond = found }
                } else if double < 0 {
                    if negative == nil { negative = found }
                } else if double.rounded() != double {
                    if fraction == nil { fraction = found }
                }
            default:
                break
            }
        }
        visit(value, path)
        return beyond ?? negative ?? fraction
    }

    public static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context, _ extra: (any CodingKey)? = nil) -> String {
            let keys = context.codingPath + (extra.map { [$0] } ?? [])
            // `storage.replicas[0]`: indices follow their array's name.
            return keys.reduce(into: "") { path, key in
                if let index = key.intValue { path += "[\(index)]" } else { path += (path.isEmpty ? "" : ".") + key.stringValue }
            }
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(path(context, key)) is required"
        case .valueNotFound(_, let context):
            if context.codingPath.isEmpty { return "the request body must be a JSON object" }
            return "\(path(context)) must not be null"
        case .typeMismatch(let type, let context):
            if context.codingPath.isEmpty { return "the request body must be a JSON object" }
            return "\(path(context)) must be \(typeName(type))"
        case .dataCorrupted(let context):
            if context.debugDescription.contains("number") {
                let field = context.codingPath.isEmpty ? "amounts and counts" : path(context)
                return "\(field) must be an integer (minor units) that fits in 64 bits"
            }
            if context.codingPath.isEmpty { return "the request body is not valid JSON" }
            // Values that validate themselves (endpoints, storage servers) say why.
            return context.debugDescription.isEmpty ? "\(path(context)) is invalid" : "\(path(context)) is invalid: \(context.debugDescription)"
        @unknown default:
            return "the request body is invalid"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int64.Type, is Int.Type: return "an integer"
        case is Bool.Type: return "true or false"
        default: return "a JSON object"
        }
    }

    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    public static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, location: String? = nil) throws -> Response {
        let data = try encoder.encode(value)
        var headers: HTTPFields = [.contentType: "application/json"]
        if let location { headers[.location] = location }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
