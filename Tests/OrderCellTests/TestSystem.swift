import AsyncHTTPClient
import CellRouting
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import OrderCellEmbedded
import OrderModel
import OrderProxy
import ServiceLifecycle
import Synchronization
import Testing

/// A clock tests move by hand.
final class ManualClock: Sendable {
    private let current: Mutex<Timestamp>
    init(_ start: Timestamp = Timestamp(secondsSinceEpoch: 1_795_301_599)) { current = Mutex(start) }
    var now: Timestamp { current.withLock { $0 } }
    func advance(seconds: Int64) { current.withLock { $0 = $0.adding(seconds: seconds) } }
}

/// An HTTP response as the tests look at it.
struct HTTPResult: Sendable {
    var status: Int
    var contentType: String?
    var body: Data

    /// The body as a JSON object (empty when it is not one).
    var json: [String: Any] {
        ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) ?? [:]
    }

    subscript(key: String) -> String? { json[key].map { "\($0)" } }
    var code: String? { self["code"] }
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A tiny client of the OrderCell HTTP API over real TCP.
struct APIClient: Sendable {
    let base: String
    var adminToken: String? = nil

    func send(_ method: HTTPMethod, _ path: String, _ body: String? = nil, admin: Bool = false) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        if admin, let adminToken { request.headers.add(name: "authorization", value: "Bearer \(adminToken)") }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 4 << 20)
        return HTTPResult(
            status: Int(response.status.code), contentType: response.headers.first(name: "content-type"),
            body: Data(buffer.readableBytesView)
        )
    }

    func create(_ merchant: String = "m1", _ outTradeNo: String, amount: Int64 = 1000, currency: String = "CNY", expire: Int? = nil) async throws -> HTTPResult {
        var body = #"{"merchant_id":"\#(merchant)","out_trade_no":"\#(outTradeNo)","amount":\#(amount),"currency":"\#(currency)""#
        if let expire { body += #","expire_seconds":\#(expire)"# }
        return try await send(.POST, "/v1/orders", body + "}")
    }

    func pay(_ id: String, _ paymentID: String, amount: Int64 = 1000) async throws -> HTTPResult {
        try await send(.POST, "/v1/orders/\(id)/pay", #"{"payment_id":"\#(paymentID)","amount":\#(amount)}"#)
    }

    func refund(_ id: String, _ refundID: String, amount: Int64) async throws -> HTTPResult {
        try await send(.POST, "/v1/orders/\(id)/refunds", #"{"refund_id":"\#(refundID)","amount":\#(amount)}"#)
    }
}

/// An embedded system serving real HTTP on a free loopback port.
struct TestSystem: Sendable {
    let system: EmbeddedSystem
    let client: APIClient
    let clock: ManualClock

    static let adminToken = "test-admin-token"

    static func run(
        layout: EmbeddedLayout = .singlePartition(cells: 4), proxy: ProxyConfiguration = .init(),
        _ body: (TestSystem) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-e2e-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let clock = ManualClock()
        var logger = Logger(label: "ordercell.test")
        logger.logLevel = .critical
        let system = try await EmbeddedSystem.open(
            EmbeddedConfiguration(dataDirectory: directory.path, port: 0, layout: layout, proxy: proxy, adminToken: adminToken),
            clock: { clock.now }, logger: logger
        )
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let group = ServiceGroup(services: [system.application { continuation.yield($0) }], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let client = APIClient(base: "http://127.0.0.1:\(port)", adminToken: adminToken)
            do {
                try await body(TestSystem(system: system, client: client, clock: clock))
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}

/// Runs `count` jobs with at most `width` in flight, collecting results in job order.
func concurrently<T: Sendable>(_ count: Int, width: Int, _ job: @escaping @Sendable (Int) async throws -> T) async throws -> [T] {
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
