import Crypto
import CellRouting
import CellService
import CellStorage
import Foundation
import NIOCore
import NIOHTTP1
import OrderHTTP
import OrderModel
import PostgresNIO

/// The access keys a load signs its requests with (docs/security.md): one per merchant it creates for, and
/// the payment service's for its pays.
public struct BenchSigning: Sendable {
    public var merchantKeys: [String: (id: String, secret: String)]
    public var paymentService: (id: String, secret: String)?
    /// HMAC keys made once per access key, as a real client keeps them (not remade for every request).
    private let signingKeys: [String: SymmetricKey]

    public init(merchantKeys: [String: (id: String, secret: String)], paymentService: (id: String, secret: String)?) {
        self.merchantKeys = merchantKeys
        self.paymentService = paymentService
        var signingKeys: [String: SymmetricKey] = [:]
        for key in Array(merchantKeys.values) + (paymentService.map { [$0] } ?? []) { signingKeys[key.id] = RequestSignature.signingKey(key.secret) }
        self.signingKeys = signingKeys
    }

    /// The `Authorization` header of a request made as `merchant` (or, for a pay, as the payment service).
    func authorization(_ method: HTTPMethod, _ path: String, _ body: String?, merchant: String, pay: Bool) -> String? {
        guard let key = pay ? paymentService : merchantKeys[merchant], let signingKey = signingKeys[key.id] else { return nil }
        let parts = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        return RequestSignature.authorize(
            method: method.rawValue, path: String(parts[0]), query: parts.count > 1 ? String(parts[1]) : "", body: Array((body ?? "").utf8),
            keyID: key.id, key: signingKey, timestamp: Int64(Date().timeIntervalSince1970), nonce: RequestSignature.newNonce()
        )
    }
}

/// The default mix against an OrderCell HTTP endpoint: create an order,
/// then pay it (95 %) or close it (5 %), read it back, and refund part of
/// 10 % of the paid ones. With `createOnly`, just the create.
public struct HTTPOrderScenario: EventLoopBenchScenario {
    public let urls: [String]
    public let client: BenchHTTPClient
    public let createOnly: Bool
    /// Signs every request when set (a deployment that takes only signed requests).
    public let signing: BenchSigning?
    public let runID: String
    /// `(host, port)` of each URL, in order.
    public let endpoints: [(host: String, port: Int)]

    /// - Parameter urls: `http://host:port` of each endpoint (`https://` when `client` speaks TLS); clients are spread over them.
    public init(urls: [String], client: BenchHTTPClient, createOnly: Bool, signing: BenchSigning? = nil) throws {
        self.urls = urls
        self.signing = signing
        self.endpoints = try urls.map { url in
            let scheme = client.usesTLS ? "https://" : "http://"
            guard url.hasPrefix(scheme) else {
                throw OrderError.invalidRequest("bench URLs are \(scheme)host:port here (https:// with --tls-ca or an https:// --url), got \(url)")
            }
            let rest = url.dropFirst(scheme.count).prefix { $0 != "/" }
            guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]) else {
                return (String(rest), 80)
            }
            return (String(rest[..<colon]), port)
        }
        self.client = client
        self.createOnly = createOnly
        self.runID = String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    public func iteration(client number: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void) async {
        try? await iteration(on: nil, client: number, sequence: sequence, record: record).get()
    }

    public func iteration(
        on eventLoop: any EventLoop, client number: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void
    ) -> EventLoopFuture<Void> {
        iteration(on: Optional(eventLoop), client: number, sequence: sequence, record: record)
    }

    private func iteration(
        on eventLoop: (any EventLoop)?, client number: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void
    ) -> EventLoopFuture<Void> {
        let endpoint = endpoints[number % endpoints.count]
        let merchant = "bench-\(number % 32)"
        let amount = 100 + sequence % 900
        let created = send(
            .POST, endpoint, "/v1/orders",
            #"{"merchant_id":"\#(merchant)","out_trade_no":"\#(runID)-\#(number)-\#(sequence)","amount":\#(amount),"currency":"CNY"}"#,
            operation: "create", merchant: merchant, on: eventLoop, record: record
        )
        guard !createOnly else { return created.map { _ in } }
        return created.flatMap { body -> EventLoopFuture<Void> in
            let loop = created.eventLoop
            guard let body, let id = Self.orderID(in: body) else { return loop.makeSucceededVoidFuture() }
            var random = SplitMix64(seed: UInt64(truncatingIfNeeded: number &* 1_000_003 &+ sequence))
            let roll = Int.random(in: 0..<100, using: &random)
            // The follow-ups ask for the same event loop as the create (none in a closed loop), so they reuse its connection.
            let settled =
                roll < 5
                ? send(.POST, endpoint, "/v1/orders/\(id)/close", nil, operation: "close", merchant: merchant, on: eventLoop, record: record)
                : send(
                    .POST, endpoint, "/v1/orders/\(id)/pay", #"{"payment_id":"p-\#(id)","amount":\#(amount)}"#, operation: "pay", merchant: merchant,
                    on: eventLoop, record: record
                )
            return settled.flatMap { _ in
                send(.GET, endpoint, "/v1/orders/\(id)", nil, operation: "query", merchant: merchant, on: eventLoop, record: record)
            }.flatMap { _ -> EventLoopFuture<ByteBuffer?> in
                guard roll >= 90 else { return loop.makeSucceededFuture(nil) }
                return send(
                    .POST, endpoint, "/v1/orders/\(id)/refunds", #"{"refund_id":"r-\#(id)","amount":\#(amount / 2)}"#, operation: "refund",
                    merchant: merchant, on: eventLoop, record: record
                )
            }.map { _ in }
        }
    }

    static func orderID(in body: ByteBuffer) -> String? {
        let text = String(buffer: body)
        guard let range = text.range(of: #""order_id":""#) else { return nil }
        return String(text[range.upperBound...].prefix(28))
    }

    /// Sends one request and records it; the future never fails (a failure is recorded) and
    /// carries the body of a successful answer.
    private func send(
        _ method: HTTPMethod, _ endpoint: (host: String, port: Int), _ path: String, _ body: String?, operation: String, merchant: String,
        on eventLoop: (any EventLoop)?, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void
    ) -> EventLoopFuture<ByteBuffer?> {
        let clock = ContinuousClock()
        let start = clock.now
        // Signing is the caller's work, and counted in the operation's time as a merchant's client would see it.
        let authorization = signing?.authorization(method, path, body, merchant: merchant, pay: operation == "pay")
        return client.send(
            method, host: endpoint.host, port: endpoint.port, path: path, json: body, authorization: authorization, on: eventLoop
        ).map { response -> ByteBuffer? in
            let elapsed = clock.now - start
            if (200..<300).contains(response.status.code) {
                record(operation, elapsed, .ok)
                return response.body
            }
            let text = String(buffer: response.body)
            let code = text.range(of: #""code":""#).map { String(text[$0.upperBound...].prefix { $0 != "\"" }) } ?? "http_\(response.status.code)"
            record(operation, elapsed, .failed(code))
            return nil
        }.recover { _ in
            record(operation, clock.now - start, .failed("transport"))
            return nil
        }
    }
}

/// One `GET` of a path that does no work (`/healthz`): what the HTTP round
/// trip alone costs — the load generator's client, the socket on both sides,
/// the server's parsing, routing and answer — with no order in it.
public struct HTTPRoundTripScenario: EventLoopBenchScenario {
    public static let operation = "round trip"
    public var firstOperation: String { Self.operation }
    public let host: String
    public let port: Int
    public let path: String
    public let client: BenchHTTPClient

    public init(host: String, port: Int, path: String = "/healthz", client: BenchHTTPClient) {
        self.host = host
        self.port = port
        self.path = path
        self.client = client
    }

    public func iteration(client number: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void) async {
        try? await roundTrip(on: nil, record: record).get()
    }

    public func iteration(
        on eventLoop: any EventLoop, client number: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void
    ) -> EventLoopFuture<Void> {
        roundTrip(on: eventLoop, record: record)
    }

    private func roundTrip(on eventLoop: (any EventLoop)?, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void) -> EventLoopFuture<Void> {
        client.recordedGet(host: host, port: port, path: path, as: Self.operation, on: eventLoop, record: record)
    }
}

extension BenchHTTPClient {
    /// One `GET`, recorded as `operation`: ok on 200, otherwise its status
    /// (or `transport`); the future never fails.
    func recordedGet(
        host: String, port: Int, path: String, as operation: String, on eventLoop: (any EventLoop)?,
        record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void
    ) -> EventLoopFuture<Void> {
        let clock = ContinuousClock()
        let start = clock.now
        return send(.GET, host: host, port: port, path: path, json: nil, on: eventLoop).map { response in
            record(operation, clock.now - start, response.status.code == 200 ? .ok : .failed("http_\(response.status.code)"))
        }.recover { _ in
            record(operation, clock.now - start, .failed("transport"))
        }
    }
}

/// Creates straight on one cell service, in process: no HTTP, no proxy.
///
/// As a proxy makes most of them: with keys of the index slots the cell
/// holds, each bound, created and claimed in one transaction
/// (``CellService/createBound(_:attempt:deadline:)``). Orders left
/// unverified would be work for the merchant-key reconciler during the
/// scenarios after this one.
public struct DirectCellScenario: BenchScenario {
    public let create: @Sendable (CreateOrderRequest) async throws -> CreateOrderResult
    /// The index slots the cell holds (nil: all of them).
    public let slots: Set<Int>?
    public let runID = String(UInt64.random(in: 0...UInt64.max), radix: 36)

    /// Creates in a cell service in this process, with keys of the slots it holds.
    public init(cell: CellService, slots: Set<Int>) {
        self.create = { request in
            guard case .order(let result) = try await cell.createBound(request, attempt: UInt64.random(in: 1...UInt64.max)) else {
                throw OrderError(.indexUnavailable, "the key is bound to another cell")
            }
            return result
        }
        self.slots = slots
    }

    /// Creates through any client of one cell (e.g. one cell service over the cell protocol, without a proxy).
    public init(slots: Set<Int>? = nil, create: @escaping @Sendable (CreateOrderRequest) async throws -> CreateOrderResult) {
        self.create = create
        self.slots = slots
    }

    public func iteration(client: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void) async {
        let clock = ContinuousClock()
        let start = clock.now
        do {
            let merchant = "bench-\(client % 32)"
            var outTradeNo = "\(runID)-\(client)-\(sequence)"
            var attempt = 0
            while let slots, !slots.contains(MerchantKey(merchantID: merchant, outTradeNo: outTradeNo).indexSlot) {
                attempt += 1
                outTradeNo = "\(runID)-\(client)-\(sequence)-\(attempt)"
            }
            let request = try CreateOrderRequest(
                merchantID: merchant, outTradeNo: outTradeNo, amount: 100 + Int64(sequence % 900), currency: "CNY", description: nil,
                expireSeconds: nil
            )
            _ = try await create(request)
            record("create", clock.now - start, .ok)
        } catch let error as OrderError {
            record("create", clock.now - start, .failed(error.code.rawValue))
        } catch {
            record("create", clock.now - start, .failed("cell_failure"))
        }
    }
}

/// Inserts straight into one cell's store: the floor under every layer. Each
/// order is inserted with its key bound and claimed in the same transaction
/// (``OrderStore/insertBound(_:now:)``), as a create in the cell of its key's
/// slot is: nothing is left for the merchant-key reconciler.
public struct DirectStoreScenario: BenchScenario {
    public let store: any OrderStore
    public let cell: CellID
    public let sequence: SegmentSequence
    public let runID = String(UInt64.random(in: 0...UInt64.max), radix: 36)

    public init(store: any OrderStore, cell: CellID) {
        self.store = store
        self.cell = cell
        self.sequence = SegmentSequence(segmentSize: 1000) { try await store.reserveSequenceSegment(size: $0) }
    }

    public func iteration(client: Int, sequence number: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void) async {
        let clock = ContinuousClock()
        let start = clock.now
        do {
            let now = Timestamp(millisecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1000))
            let order = Order(
                id: try OrderID(cell: cell, createdAt: now, sequence: try await sequence.next()), merchantID: "bench-\(client % 32)",
                outTradeNo: "\(runID)-\(client)-\(number)", amount: 100, currency: Currency(code: "CNY")!, description: nil,
                createdAt: now, expiresAt: now.adding(seconds: 1800), keyStatus: .verified
            )
            _ = try await store.insertBound([BoundInsert(order: order, attempt: UInt64.random(in: 1...UInt64.max))], now: now)[0].get()
            record("create", clock.now - start, .ok)
        } catch {
            record("create", clock.now - start, .failed("store"))
        }
    }
}

/// The same INSERT as a create, straight on PostgreSQL with a pool of the
/// same size, into a scratch table: what the database alone can do.
public struct RawPostgresScenario: BenchScenario {
    public let client: PostgresClient
    public let runID = String(UInt64.random(in: 0...UInt64.max), radix: 36)

    public init(client: PostgresClient) { self.client = client }

    public static func prepare(_ client: PostgresClient) async throws {
        try await client.query("CREATE TABLE IF NOT EXISTS bench_raw_orders (LIKE orders INCLUDING ALL)")
    }

    public func iteration(client number: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void) async {
        let clock = ContinuousClock()
        let start = clock.now
        let id = "\(runID)-\(number)-\(sequence)"
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        do {
            try await client.query(
                """
                INSERT INTO bench_raw_orders (order_id, merchant_id, out_trade_no, amount, currency, status, refunded_amount, \
                created_at, expires_at, updated_at, revision) VALUES (\(id), \("bench"), \(id), \(100), \("CNY"), \("CREATED"), \(0), \
                \(now), \(now + 1_800_000), \(now), \(1))
                """
            )
            record("create", clock.now - start, .ok)
        } catch {
            record("create", clock.now - start, .failed("postgres"))
        }
    }
}
