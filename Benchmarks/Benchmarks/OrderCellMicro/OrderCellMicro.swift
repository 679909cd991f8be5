import Benchmark
import CellRouting
import Foundation
import NIOCore
import OrderModel
import RequestJSON

/// Micro-benchmarks of the per-request hot paths: the order id codec, cell
/// selection at 4 and 64 cells, JSON coding of an order, and reading a
/// create body with `JSONDecoder` and with the hand-written reader.
let benchmarks: @Sendable () -> Void = {
    // A thousand operations a sample: the figures are per thousand, far above the timer's resolution.
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .kilo, maxDuration: .seconds(3))

    let now = Timestamp(secondsSinceEpoch: 1_795_301_599)
    let cell = CellID(unchecked: 17)

    Benchmark("order id: mint + format + parse") { benchmark in
        for sequence in benchmark.scaledIterations {
            let id = try OrderID(cell: cell, createdAt: now, sequence: Int64(sequence))
            blackHole(try OrderID(parsing: id.description))
        }
    }

    Benchmark("order id: mint") { benchmark in
        for sequence in benchmark.scaledIterations { blackHole(try OrderID(cell: cell, createdAt: now, sequence: Int64(sequence))) }
    }

    Benchmark("order id: parse") { benchmark in
        let text = try OrderID(cell: cell, createdAt: now, sequence: 42).description
        for _ in benchmark.scaledIterations { blackHole(try OrderID(parsing: text)) }
    }

    for count in [4, 64] {
        let candidates = (1...count).map { PlacementCandidate(cell: CellID(unchecked: UInt16($0)), weight: 100, recentLoad: $0 * 3) }
        Benchmark("cell selection: \(count) cells") { benchmark in
            var random = SplitMix64(seed: 7)
            for _ in benchmark.scaledIterations { blackHole(CellSelector.choose(from: candidates, using: &random)) }
        }
        Benchmark("order retry: place with \(count) cells, one failure") { benchmark in
            var random = SplitMix64(seed: 9)
            for _ in benchmark.scaledIterations {
                var retry = OrderRetry(candidates: candidates, policy: OrderRetryPolicy())
                _ = retry.nextCell(using: &random)
                retry.attemptFailed()
                blackHole(retry.nextCell(using: &random))
            }
        }
    }

    struct OrderJSON: Codable {
        var order_id: String, cell_id: Int, merchant_id: String, out_trade_no: String, amount: Int64, currency: String
        var status: String, refunded_amount: Int64, created_at: String, expires_at: String, updated_at: String
    }
    let order = OrderJSON(
        order_id: "1000226112122531900000000013", cell_id: 2, merchant_id: "m1", out_trade_no: "demo-1", amount: 1999,
        currency: "CNY", status: "CREATED", refunded_amount: 0, created_at: now.rfc3339, expires_at: now.adding(seconds: 1800).rfc3339,
        updated_at: now.rfc3339
    )
    let encoder = JSONEncoder()
    let decoder = JSONDecoder()
    let encoded = try! encoder.encode(order)
    Benchmark("JSON: encode an order (Foundation)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try encoder.encode(order)) }
    }
    Benchmark("JSON: decode an order (Foundation)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try decoder.decode(OrderJSON.self, from: encoded)) }
    }

    // A create body as the proxy reads it (`HTTPBodies.decode`): from the
    // collected ByteBuffer to a validated CreateOrderRequest.
    let createBody = ByteBuffer(
        string: #"{"merchant_id":"m1","out_trade_no":"demo-1","amount":1999,"currency":"CNY","description":"tea","expire_seconds":1800}"#
    )
    /// The body as it was declared for `JSONDecoder`.
    struct CreateOrderBody: Decodable {
        var merchantID: String, outTradeNo: String, amount: Int64, currency: String, description: String?, expireSeconds: Int64?
        enum CodingKeys: String, CodingKey {
            case merchantID = "merchant_id", outTradeNo = "out_trade_no", amount, currency, description
            case expireSeconds = "expire_seconds"
        }
    }
    Benchmark("JSON body → create request, Foundation JSONDecoder") { benchmark in
        for _ in benchmark.scaledIterations {
            let body = try decoder.decode(CreateOrderBody.self, from: Data(createBody.readableBytesView))
            blackHole(
                try CreateOrderRequest(
                    merchantID: body.merchantID, outTradeNo: body.outTradeNo, amount: body.amount, currency: body.currency,
                    description: body.description, expireSeconds: body.expireSeconds
                )
            )
        }
    }
    // The same reads as `CreateOrderBody.init(json:)` in OrderProxy.
    Benchmark("JSON body → create request, hand-written reader") { benchmark in
        for _ in benchmark.scaledIterations {
            let json = try JSONObjectReader(createBody)
            blackHole(
                try CreateOrderRequest(
                    merchantID: json.string("merchant_id"), outTradeNo: json.string("out_trade_no"), amount: json.int64("amount"),
                    currency: json.string("currency"), description: json.stringIfPresent("description"),
                    expireSeconds: json.int64IfPresent("expire_seconds")
                )
            )
        }
    }
    Benchmark("timestamp: RFC 3339") { benchmark in
        for index in benchmark.scaledIterations { blackHole(now.adding(milliseconds: Int64(index)).rfc3339) }
    }
}
