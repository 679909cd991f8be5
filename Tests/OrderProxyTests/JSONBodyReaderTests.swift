import CellRouting
import Foundation
import NIOCore
import OrderModel
@testable import RequestJSON
import Testing

@testable import OrderHTTP
@testable import OrderProxy

/// The hand-written body reader against the `JSONDecoder` path it replaced:
/// the old path (the Codable bodies below, `HTTPBodies.describe`) is the
/// oracle, run on the same bytes.
@Suite("JSON body reader")
struct JSONBodyReaderTests {
    enum BodyKind: String, Sendable {
        case create, pay, refund
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var kind: BodyKind
        var bytes: [UInt8]
        var name: String?

        init(_ text: String, name: String? = nil) {
            self.init(.create, text, name: name)
        }

        init(_ kind: BodyKind, _ text: String, name: String? = nil) {
            self.init(kind, Array(text.utf8), name: name ?? String(text.prefix(100)))
        }

        init(_ kind: BodyKind, _ bytes: [UInt8], name: String) {
            self.kind = kind
            self.bytes = bytes
            self.name = name
        }

        var testDescription: String { "\(kind.rawValue): \(name ?? "")" }
    }

    static let base = #""merchant_id":"m","out_trade_no":"a","currency":"CNY""#
    static func create(amount: String) -> String { "{\(base),\"amount\":\(amount)}" }
    static func create(extra: String) -> String { "{\(base),\"amount\":1,\(extra)}" }
    static func create(merchantID: String) -> String { #"{"merchant_id":"\#(merchantID)","out_trade_no":"a","amount":1,"currency":"CNY"}"# }
    static func create(merchantIDBytes: [UInt8]) -> [UInt8] {
        Array(#"{"out_trade_no":"a","amount":1,"currency":"CNY","merchant_id":""#.utf8) + merchantIDBytes + Array(#""}"#.utf8)
    }
    static func nested(_ depth: Int) -> String { String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }

    /// Bodies on which both paths must give the same values or the same message.
    static let agreeing: [Case] = [
        // Not an object, not JSON, nothing.
        Case(""), Case(" "), Case("{bad json"), Case("{"), Case("[]"), Case("1"), Case(#""s""#), Case("true"), Case("[1,2"),
        Case("null"), Case("[] x"), Case("{} x"), Case("{}{}"), Case("\u{0}"), Case(nested(512), name: "top-level array 512 deep"),
        Case(nested(513), name: "top-level array 513 deep"),
        // Whitespace, byte order mark, trailing bytes.
        Case("{} "), Case(" \n\t{} \r\n"), Case("\u{FEFF}" + create(amount: "1")), Case(create(amount: "1") + "\u{0}"),
        Case("{\(base),\u{A0}\"amount\":1}"), Case("\u{FEFF}"), Case("\u{FEFF}[]"), Case("{ }"),
        Case(#" { "merchant_id" : "m" ,\#n"out_trade_no":"a",\#t"amount":\#r1 , "currency":"CNY" } "#),
        // Required fields and their order.
        Case("{}"), Case(#"{"out_trade_no":"a","amount":1,"currency":"CNY"}"#), Case(#"{"merchant_id":"m","amount":1,"currency":"CNY"}"#),
        Case(#"{"merchant_id":"m","out_trade_no":"a","currency":"CNY"}"#), Case(#"{"merchant_id":"m","out_trade_no":"a","amount":1}"#),
        Case(#"{"merchant_id":null,"out_trade_no":"a","amount":1,"currency":"CNY"}"#),
        Case(#"{"merchant_id":1,"out_trade_no":2,"amount":"x","currency":3}"#), Case(#"{"currency":3,"merchant_id":1}"#),
        Case(#"{"amount":"x"}"#), Case(#"{"amount":1.5}"#), Case(#"{"amount":1.5, "merchant_id":3}"#),
        Case(#"{"merchant_id":["m"],"out_trade_no":"a","amount":1,"currency":"CNY"}"#),
        Case(#"{"merchant_id":{},"out_trade_no":"a","amount":1,"currency":"CNY"}"#),
        Case(#"{"merchant_id":false,"out_trade_no":"a","amount":1,"currency":"CNY"}"#),
        // Integers.
        Case(create(amount: "1")), Case(create(amount: "1.0")), Case(create(amount: "1e3")), Case(create(amount: "1E3")),
        Case(create(amount: "1e+3")), Case(create(amount: "10e-1")), Case(create(amount: "1.0e3")), Case(create(amount: "-0")),
        Case(create(amount: "-0.0")), Case(create(amount: "0.0")), Case(create(amount: "0e99999")), Case(create(amount: "1.5e1")),
        Case(create(amount: "100e-2")), Case(create(amount: "1E-0")), Case(create(amount: "1000000000000")),
        Case(create(amount: "9223372036854775807")), Case(create(amount: "-9223372036854775808")),
        Case(create(amount: "9007199254740993")), Case(create(amount: "9007199254740993.0")), Case(create(amount: "1e18")),
        Case(create(amount: "-100")),
        Case(create(amount: #""100""#)), Case(create(amount: "null")), Case(create(amount: "true")), Case(create(amount: "[1]")),
        Case(create(amount: "{}")), Case(create(amount: "01")), Case(create(amount: "+1")), Case(create(amount: "1.")),
        Case(create(amount: ".5")), Case(create(amount: "-")), Case(create(amount: "1e")), Case(create(amount: "0x10")),
        Case(create(amount: "NaN")), Case(create(amount: "Infinity")), Case(create(amount: "-Infinity")),
        // Optional fields: null is absent, a wrong type is refused.
        Case(create(extra: #""description":null"#)), Case(create(extra: #""description":5"#)), Case(create(extra: #""description":"""#)),
        Case(create(extra: #""description":"tea 茶 🍵""#)), Case(create(extra: #""expire_seconds":null"#)),
        Case(create(extra: #""expire_seconds":"1""#)), Case(create(extra: #""expire_seconds":600"#)),
        Case(create(extra: #""expire_seconds":6e2"#)),
        // Duplicate keys: the first wins.
        Case(create(extra: #""amount":2"#)), Case(create(extra: #""merchant_id":"m2""#)), Case(create(extra: #""merchant_id":null"#)),
        Case(create(extra: #""merchant_id":5"#)), Case(#"{"amount":null,"amount":1,\#(base)}"#), Case(#"{"amount":"x","amount":1,\#(base)}"#),
        Case(create(extra: #""description":null,"description":"x""#)),
        // Unknown members are ignored, whatever they hold, up to the depth limit.
        Case(create(extra: #""x":{"a":[1,2,{"b":null}],"c":true,"d":-1.5e-3}"#)), Case(create(extra: #""":1"#)),
        Case(create(extra: #""x":1e999"#)), Case(create(extra: "\"x\":\(nested(511))"), name: "unknown member 512 deep"),
        Case(create(extra: "\"x\":\(nested(512))"), name: "unknown member 513 deep"),
        Case(create(extra: "\"x\":" + String(repeating: #"{"a":"#, count: 511) + "1" + String(repeating: "}", count: 511)), name: "objects 512 deep"),
        Case(create(extra: "\"x\":" + String(repeating: #"{"a":"#, count: 512) + "1" + String(repeating: "}", count: 512)), name: "objects 513 deep"),
        // Syntax.
        Case(create(extra: #""x":tru"#)), Case(create(extra: #""x":nul"#)), Case(create(extra: #""x":True"#)), Case("{,\(base),\"amount\":1}"),
        Case("{\(base),\"amount\":1 \"x\":1}"), Case("{\(base) \"amount\":1}"), Case("{'merchant_id':'m'}"), Case("{merchant_id:1}"),
        Case("{1:2}"), Case(#"{"amount":1,,"merchant_id":"m"}"#), Case(#"{"amount" 1,"merchant_id":"m"}"#), Case(#"{"merchant_id":"unterminated"#),
        // Strings and escapes.
        Case(create(merchantID: #"\u00e9\ud83c\udf75\n\t\"\\\/\b\f\r"#)), Case(create(merchantID: #"\u00E9\uD83C\uDF75"#)),
        Case(create(merchantID: #"a\/b"#)), Case(create(merchantID: #"\u0000"#)), Case(create(merchantID: "a\u{7F}b")),
        Case(create(merchantID: #"\ud83c"#)), Case(create(merchantID: #"\udf75"#)), Case(create(merchantID: #"\ud83cx"#)),
        Case(create(merchantID: #"\ud83c\u0041"#)), Case(create(merchantID: #"\ud83c\ud83c"#)), Case(create(merchantID: #"\u00"#)),
        Case(create(merchantID: #"\uZZZZ"#)), Case(create(merchantID: #"\x"#)), Case(create(merchantID: "a\tb")),
        Case(create(merchantID: "a\nb")), Case(#"{"merchant\u005fid":"m","out_trade_no":"a","amount":1,"currency":"CNY"}"#),
        Case(#"{"merchant_id":"m","merchant\u005fid":"x","out_trade_no":"a","amount":1,"currency":"CNY"}"#),
        Case(#"{"merchant\u005fid":"x","merchant_id":"m","out_trade_no":"a","amount":1,"currency":"CNY"}"#),
        Case(#"{"merchant_id":"m","out_trade_no":"a","amount":1,"currency":"CNY","descr\u0069ption":"\u0074ea"}"#),
        // UTF-8.
        Case(.create, create(merchantIDBytes: [0xF0, 0x9F, 0x8D, 0xB5]), name: "4-byte sequence"),
        Case(.create, create(merchantIDBytes: [0xFF]), name: "0xFF in a string"),
        Case(.create, create(merchantIDBytes: [0xC0, 0xAF]), name: "overlong"),
        Case(.create, create(merchantIDBytes: [0xED, 0xA0, 0x80]), name: "UTF-8 surrogate"),
        Case(.create, create(merchantIDBytes: [0xE6, 0x97]), name: "truncated sequence"),
        Case(.create, create(merchantIDBytes: [0xF4, 0x90, 0x80, 0x80]), name: "above U+10FFFF"),
        Case(.create, Array(create(amount: "1").utf8) + [0xFF], name: "0xFF after the object"),
        Case(.create, Array(#"{"amount":1,"merchant_id":"m",""#.utf8) + [0xFF] + Array(#"":1}"#.utf8), name: "0xFF in a key"),
        // Pay and refund bodies.
        Case(.pay, "{}"), Case(.pay, #"{"payment_id":"p","amount":1000}"#), Case(.pay, #"{"payment_id":"p"}"#),
        Case(.pay, #"{"amount":1}"#), Case(.pay, #"{"payment_id":null,"amount":1}"#), Case(.pay, #"{"payment_id":"p","amount":"1"}"#),
        Case(.pay, #"{"payment_id":7,"amount":1}"#), Case(.pay, "[]"), Case(.pay, ""),
        Case(.refund, "{}"), Case(.refund, #"{"refund_id":"r"}"#), Case(.refund, #"{"refund_id":"r","amount":-1}"#),
        Case(.refund, #"{"refund_id":"r","amount":1,"reason":null}"#), Case(.refund, #"{"refund_id":"r","amount":1,"reason":"late"}"#),
        Case(.refund, #"{"refund_id":"r","amount":1,"reason":5}"#), Case(.refund, #"{"refund_id":"r","amount":null}"#),
    ]

    @Test(arguments: agreeing)
    func agreesWithJSONDecoder(_ body: Case) {
        #expect(Self.current(body) == Self.legacy(body))
    }

    /// Mangled bodies (bytes flipped, inserted, deleted, cut) never crash the
    /// reader, and it accepts exactly what an independent parser
    /// (`JSONSerialization`) reads as an object — trailing commas aside,
    /// which the reader refuses on purpose.
    @Test(arguments: [BodyKind.create, .pay, .refund])
    func mangledBodiesAreJudgedLikeAnIndependentParser(_ kind: BodyKind) throws {
        let seeds: [BodyKind: (text: String, seed: UInt64)] = [
            .create: (#"{"merchant_id":"m\u00e9","out_trade_no":"a-1","amount":1999,"currency":"CNY","description":"t\"ea","expire_seconds":1800,"x":[1,{"y":null}]}"#, 1),
            .pay: (#"{"payment_id":"p-1","amount":1.0e3}"#, 2),
            .refund: (#"{"refund_id":"r\ud83d\ude00","amount":-0,"reason":null}"#, 3),
        ]
        let alphabet = Array(#"{}[]":,\-+.eE0123456789 nultrfas"#.utf8) + [0x00, 0x7F, 0x80, 0xC3, 0xE2, 0xF0, 0xFF]
        let (text, seed) = try #require(seeds[kind])
        var random = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15)
        let original = Array(text.utf8)
        #expect(Self.current(Case(kind, original, name: "seed")).hasPrefix("ok"))
        var objects = 0
        for _ in 0..<3000 {
            var bytes = original
            for _ in 0...Int.random(in: 0..<3, using: &random) {
                let at = Int.random(in: 0..<max(bytes.count, 1), using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0 where !bytes.isEmpty: bytes[at] = alphabet.randomElement(using: &random)!
                case 1: bytes.insert(alphabet.randomElement(using: &random)!, at: min(at, bytes.count))
                case 2 where !bytes.isEmpty: bytes.remove(at: at)
                default: bytes = Array(bytes.prefix(at))
                }
            }
            let shown = String(decoding: bytes, as: UTF8.self)
            let readerAccepts = (try? JSONObjectReader(ByteBuffer(bytes: bytes))) != nil
            let parserAccepts = (try? JSONSerialization.jsonObject(with: Data(bytes))) is [String: Any]
            if parserAccepts { objects += 1 }
            let compact = shown.filter { !" \t\r\n".contains($0) }
            if compact.contains(",}") || compact.contains(",]") {
                #expect(!readerAccepts, "accepted a trailing comma: \(shown)")
            } else {
                #expect(readerAccepts == parserAccepts, "reader \(readerAccepts), JSONSerialization \(parserAccepts): \(shown)")
            }
            // Every refusal is a typed invalid_request; the full decode never traps.
            _ = Self.current(Case(kind, bytes, name: "mangled"))
        }
        #expect(objects > 0, "some mangled bodies stay JSON objects (e.g. a changed digit)")
    }

    @Test func nestingIsBoundedAt512LevelsTheTopLevelObjectIncluded() {
        let inside = { (depth: Int) in ByteBuffer(string: #"{"x":"# + Self.nested(depth) + "}") }
        #expect((try? JSONObjectReader(inside(JSONObjectReader.maximumDepth - 1))) != nil)
        #expect(throws: OrderError.invalidRequest("the request body is not valid JSON")) {
            try JSONObjectReader(inside(JSONObjectReader.maximumDepth))
        }
    }

    static let notJSON = "invalid_request: the request body is not valid JSON"
    static let accepted = "ok m|a|1|CNY|nil|nil"
    static func notInt64(_ field: String, unit: String = "minor units") -> String {
        "invalid_request: \(field) must be an integer (\(unit)) that fits in 64 bits"
    }

    /// Where the reader deliberately differs from the old path: the old
    /// answer is pinned too, so a change in Foundation shows up here.
    static let differing: [(Case, legacy: String, current: String)] = [
        // Valid numbers that are not 64-bit integers: the old path called them invalid JSON,
        // the reader gives the message `HTTPBodies.describe` meant for them.
        (Case(create(amount: "1.5")), notJSON, notInt64("amount")),
        (Case(create(amount: "15e-1")), notJSON, notInt64("amount")),
        (Case(create(amount: "1e30")), notJSON, notInt64("amount")),
        (Case(create(amount: "1e19")), notJSON, notInt64("amount")),
        (Case(create(amount: "1e400")), notJSON, notInt64("amount")),
        (Case(create(amount: "9223372036854775808")), notJSON, notInt64("amount")),
        (Case(create(amount: "-9223372036854775809")), notJSON, notInt64("amount")),
        (Case(create(amount: "99999999999999999999")), notJSON, notInt64("amount")),
        (Case(create(extra: #""expire_seconds":1.5"#)), notJSON, notInt64("expire_seconds", unit: "seconds")),
        (Case(.pay, #"{"payment_id":"p","amount":0.5}"#), notJSON, notInt64("amount")),
        // Values the old path rounded through Double: the reader takes the exact value.
        (Case(create(amount: "1.000000000000000000001")), accepted, notInt64("amount")),
        (Case(create(amount: "9007199254740993.5")), "ok m|a|9007199254740993|CNY|nil|nil", notInt64("amount")),
        (Case(create(amount: "1e-400")), "ok m|a|0|CNY|nil|nil", notInt64("amount")),
        (Case(create(amount: "9.223372036854775807e18")), notJSON, "ok m|a|9223372036854775807|CNY|nil|nil"),
        // Strict JSON: the old path allowed trailing commas and did not look inside unknown members.
        (Case(create(amount: "1,")), accepted, notJSON),
        (Case(create(extra: #""x":[1,]"#)), accepted, notJSON),
        (Case(create(extra: #""x":{"a":1,}"#)), accepted, notJSON),
        (Case(create(extra: #""x":-"#)), accepted, notJSON),
        (Case(create(extra: #""x":01"#)), accepted, notJSON),
        (Case(create(extra: #""x":"\q""#)), accepted, notJSON),
        (Case(create(extra: #""x":"\ud83c""#)), accepted, notJSON),
        (Case(.create, Array(create(extra: #""x":""#).utf8.dropLast(1)) + [0xFF] + Array(#""}"#.utf8), name: "0xFF in an unknown member"),
            accepted, notJSON),
        // The whole body is checked before any field: a syntax error wins over a missing field.
        (Case(#"{"amount":01}"#), "invalid_request: merchant_id is required", notJSON),
        (Case(#"{"out_trade_no":"\x"}"#), "invalid_request: merchant_id is required", notJSON),
        // UTF-8 only (RFC 8259 §8.1): the old path also took UTF-16 and UTF-32.
        (Case(.create, Array(create(amount: "1").data(using: .utf16LittleEndian) ?? Data()), name: "UTF-16LE"),
            accepted, notJSON),
    ]

    @Test(arguments: differing)
    func differsFromJSONDecoderOnPurpose(_ body: Case, legacy: String, current: String) {
        #expect(Self.legacy(body) == legacy)
        #expect(Self.current(body) == current)
    }

    // MARK: - The reader on its own

    @Test func readsFieldsWithTheirMessages() throws {
        let json = try JSONObjectReader(ByteBuffer(string: #"{"s":"x","n":-42,"z":null,"e":"caf\u00e9 \ud83c\udf75","t":true,"s":"second"}"#))
        #expect(try json.string("s") == "x")
        #expect(try json.int64("n") == -42)
        #expect(try json.stringIfPresent("z") == nil)
        #expect(try json.int64IfPresent("z") == nil)
        #expect(try json.stringIfPresent("missing") == nil)
        #expect(try json.string("e") == "café 🍵")
        #expect(throws: OrderError.invalidRequest("missing is required")) { try json.string("missing") }
        #expect(throws: OrderError.invalidRequest("z must not be null")) { try json.int64("z") }
        #expect(throws: OrderError.invalidRequest("t must be a string")) { try json.string("t") }
        #expect(throws: OrderError.invalidRequest("s must be an integer")) { try json.int64IfPresent("s") }
    }

    @Test func findsEscapedKeys() throws {
        let json = try JSONObjectReader(ByteBuffer(string: #"{"\u0061\"b":1,"a\"b":2}"#))
        #expect(try json.int64(#"a"b"#) == 1)
    }

    @Test(arguments: [
        ("0", 0), ("-0", 0), ("7", 7), ("-7", -7), ("1.0", 1), ("1.50e1", 15), ("0.001e3", 1), ("100e-2", 1), ("120e-1", 12),
        ("1e18", 1_000_000_000_000_000_000), ("9223372036854775807", .max), ("-9223372036854775808", .min),
        ("92233720368547758070e-1", .max), ("0.000e-99999999999999", 0), ("10000000000000000000000e-4", 1_000_000_000_000_000_000),
    ] as [(String, Int64)])
    func integerValuesOfNumbers(_ token: String, _ value: Int64) {
        #expect(Self.int64(token) == value)
    }

    @Test(arguments: [
        "1.5", "0.1", "1e-1", "15e-1", "1e19", "9223372036854775808", "-9223372036854775809", "12345678901234567890e-10",
        "1.000000000000000000001", "1e99999999999999999999",
    ])
    func numbersThatAreNotInt64(_ token: String) {
        #expect(Self.int64(token) == nil)
    }

    static func int64(_ token: String) -> Int64? {
        var token = token
        return token.withUTF8 { JSONNumber.int64(UnsafeRawBufferPointer($0)) }
    }

    // MARK: - Both paths

    static func current(_ body: Case) -> String {
        let buffer = ByteBuffer(bytes: body.bytes)
        switch body.kind {
        case .create: return outcome(Result { () throws(OrderError) in try HTTPBodies.decode(CreateOrderBody.self, from: buffer) })
        case .pay: return outcome(Result { () throws(OrderError) in try HTTPBodies.decode(PayBody.self, from: buffer) })
        case .refund: return outcome(Result { () throws(OrderError) in try HTTPBodies.decode(RefundBody.self, from: buffer) })
        }
    }

    static func legacy(_ body: Case) -> String {
        switch body.kind {
        case .create: return outcome(legacyDecode(LegacyCreateOrderBody.self, body.bytes))
        case .pay: return outcome(legacyDecode(LegacyPayBody.self, body.bytes))
        case .refund: return outcome(legacyDecode(LegacyRefundBody.self, body.bytes))
        }
    }

    /// What `HTTPBodies.decode` did with `JSONDecoder` before the reader.
    static func legacyDecode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> Result<T, OrderError> {
        guard !bytes.isEmpty else { return .failure(.invalidRequest("the request body must be a JSON object")) }
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(bytes)))
        } catch let error as DecodingError {
            return .failure(.invalidRequest(HTTPBodies.describe(error)))
        } catch {
            return .failure(.invalidRequest("the request body is not valid JSON"))
        }
    }

    static func outcome(_ result: Result<some Summarized, OrderError>) -> String {
        switch result {
        case .success(let body): return "ok \(body.summary)"
        case .failure(let error): return "\(error.code.rawValue): \(error.detail)"
        }
    }
}

protocol Summarized {
    var summary: String { get }
}

extension CreateOrderBody: Summarized {
    var summary: String { "\(merchantID)|\(outTradeNo)|\(amount)|\(currency)|\(description ?? "nil")|\(expireSeconds.map(String.init) ?? "nil")" }
}

extension PayBody: Summarized {
    var summary: String { "\(paymentID)|\(amount)" }
}

extension RefundBody: Summarized {
    var summary: String { "\(refundID)|\(amount)|\(reason ?? "nil")" }
}

/// The bodies as they were decoded before the reader.
struct LegacyCreateOrderBody: Decodable, Summarized {
    var merchantID: String
    var outTradeNo: String
    var amount: Int64
    var currency: String
    var description: String?
    var expireSeconds: Int64?

    enum CodingKeys: String, CodingKey {
        case merchantID = "merchant_id", outTradeNo = "out_trade_no", amount, currency, description
        case expireSeconds = "expire_seconds"
    }

    var summary: String { "\(merchantID)|\(outTradeNo)|\(amount)|\(currency)|\(description ?? "nil")|\(expireSeconds.map(String.init) ?? "nil")" }
}

struct LegacyPayBody: Decodable, Summarized {
    var paymentID: String
    var amount: Int64
    enum CodingKeys: String, CodingKey { case paymentID = "payment_id", amount }
    var summary: String { "\(paymentID)|\(amount)" }
}

struct LegacyRefundBody: Decodable, Summarized {
    var refundID: String
    var amount: Int64
    var reason: String?
    enum CodingKeys: String, CodingKey { case refundID = "refund_id", amount, reason }
    var summary: String { "\(refundID)|\(amount)|\(reason ?? "nil")" }
}
