import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OrderHTTP

/// Signs a client's requests of the public API with one access key (docs/security.md).
public struct RequestSigner: Sendable {
    public var keyID: String
    public var secret: String
    /// The client's clock, Unix seconds (a test's manual clock, or the wall clock).
    public var now: @Sendable () -> Int64

    public init(keyID: String, secret: String, now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        self.keyID = keyID
        self.secret = secret
        self.now = now
    }

    /// The `Authorization` header of `method path` with `body` (`path` may carry its query).
    public func authorization(_ method: String, _ path: String, _ body: String?, nonce: String = RequestSignature.newNonce()) -> String {
        let parts = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        return RequestSignature.authorize(
            method: method, path: String(parts[0]), query: parts.count > 1 ? String(parts[1]) : "", body: Data((body ?? "").utf8),
            keyID: keyID, secret: secret, timestamp: now(), nonce: nonce
        )
    }
}

/// An HTTP response as the tests look at it.
public struct HTTPResult: Sendable {
    public var status: Int
    public var contentType: String?
    public var body: Data
    public var retryAfter: String? = nil

    /// The body as a JSON object (empty when it is not one).
    public var json: [String: Any] {
        ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) ?? [:]
    }

    public subscript(key: String) -> String? { json[key].map { "\($0)" } }
    public var code: String? { self["code"] }
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A tiny client of the OrderCell HTTP API over real TCP.
public struct APIClient: Sendable {
    public let base: String
    public var adminToken: String?
    /// Deadline of one request. A client that fails over to another proxy
    /// keeps it short: requests queued for a dead server only fail at their
    /// deadline (the HTTP client keeps retrying the connection until then).
    public var timeout: Int64
    /// Signs every request of the public API (`/v1/…`) when set.
    public var signer: RequestSigner?
    /// The HTTP client (one trusting a cluster's CA for `https://` bases).
    public var http: HTTPClient

    public init(base: String, adminToken: String? = nil, timeout: Int64 = 30, signer: RequestSigner? = nil, http: HTTPClient = .shared) {
        self.base = base
        self.http = http
        self.adminToken = adminToken
        self.timeout = timeout
        self.signer = signer
    }

    /// This client signing with `signer` (nil: unsigned).
    public func signing(with signer: RequestSigner?) -> APIClient {
        var client = self
        client.signer = signer
        return client
    }

    /// Sends with another bearer token (roles).
    public func send(_ method: HTTPMethod, _ path: String, _ body: String? = nil, token: String) async throws -> HTTPResult {
        var client = self
        client.adminToken = token
        return try await client.send(method, path, body, admin: true)
    }

    public func send(_ method: HTTPMethod, _ path: String, _ body: String? = nil, admin: Bool = false) async throws -> HTTPResult {
        var authorization: String?
        if admin, let adminToken {
            authorization = "Bearer \(adminToken)"
        } else if let signer, path.hasPrefix("/v1/") {
            authorization = signer.authorization(method.rawValue, path, body)
        }
        return try await send(method, path, body, authorization: authorization)
    }

    /// Sends with exactly this `Authorization` header (nil: none).
    public func send(_ method: HTTPMethod, _ path: String, _ body: String?, authorization: String?) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        if let authorization { request.headers.add(name: "authorization", value: authorization) }
        let response = try await http.execute(request, timeout: .seconds(timeout))
        let buffer = try await response.body.collect(upTo: 4 << 20)
        return HTTPResult(
            status: Int(response.status.code), contentType: response.headers.first(name: "content-type"),
            body: Data(buffer.readableBytesView), retryAfter: response.headers.first(name: "retry-after")
        )
    }

    public func create(_ merchant: String = "m1", _ outTradeNo: String, amount: Int64 = 1000, currency: String = "CNY", expire: Int? = nil) async throws -> HTTPResult {
        var body = #"{"merchant_id":"\#(merchant)","out_trade_no":"\#(outTradeNo)","amount":\#(amount),"currency":"\#(currency)""#
        if let expire { body += #","expire_seconds":\#(expire)"# }
        return try await send(.POST, "/v1/orders", body + "}")
    }

    public func pay(_ id: String, _ paymentID: String, amount: Int64 = 1000) async throws -> HTTPResult {
        try await send(.POST, "/v1/orders/\(id)/pay", #"{"payment_id":"\#(paymentID)","amount":\#(amount)}"#)
    }

    public func refund(_ id: String, _ refundID: String, amount: Int64) async throws -> HTTPResult {
        try await send(.POST, "/v1/orders/\(id)/refunds", #"{"refund_id":"\#(refundID)","amount":\#(amount)}"#)
    }
}

/// Runs `count` jobs with at most `width` in flight, collecting results in job order.
public func concurrently<T: Sendable>(_ count: Int, width: Int, _ job: @escaping @Sendable (Int) async throws -> T) async throws -> [T] {
    try await withThrowingTaskGroup(of: (Int, T).self) { group in
        var results = [T?](repeating: nil, count: count)
        var next = 0
        while next < min(width, count) {
            let index = next
            group.addTask { (index, try await job(index)) }
            next += 1
        }
        while let (index, value) = try await group.next() {
            results[index] = value
            if next < count {
                let index = next
                group.addTask { (index, try await job(index)) }
                next += 1
            }
        }
        return results.map { $0! }
    }
}
