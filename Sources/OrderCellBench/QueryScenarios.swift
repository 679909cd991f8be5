import CellService
import NIOCore
import OrderModel

/// Reads of orders that exist, for measuring the proxy hop without the
/// storage's commit latency in it: every create waits for an `fsync` (or a
/// synchronous replica), whose spread from run to run is larger than the
/// hop itself; a read by id commits nothing and finds its pages cached.
public enum QueryScenarios {
    public static let operation = "query"

    /// Which of `count` seeded orders an iteration reads: spread over all of
    /// them, the same for every scenario of a run.
    static func index(client: Int, sequence: Int, count: Int) -> Int {
        Int((UInt64(truncatingIfNeeded: client) &* 7_919 &+ UInt64(truncatingIfNeeded: sequence) &* 104_729) % UInt64(max(count, 1)))
    }

    /// Creates `orders` orders in `cell` (16 at a time) for the read comparison; their ids.
    public static func seed(_ cell: CellService, orders: Int) async throws -> [OrderID] {
        let run = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        return try await withThrowingTaskGroup(of: [OrderID].self) { group in
            for worker in 0..<16 {
                group.addTask {
                    var ids: [OrderID] = []
                    for number in stride(from: worker, to: orders, by: 16) {
                        let request = try CreateOrderRequest(
                            merchantID: "bench-\(number % 32)", outTradeNo: "seed-\(run)-\(number)", amount: 100, currency: "CNY",
                            description: nil, expireSeconds: nil
                        )
                        ids.append(try await cell.create(request).order.id)
                    }
                    return ids
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
    }
}

/// Reads orders by id straight from one cell service, in process: no HTTP, no proxy.
public struct DirectQueryScenario: BenchScenario {
    public let cell: CellService
    public let orderIDs: [OrderID]
    public var firstOperation: String { QueryScenarios.operation }

    public init(cell: CellService, orderIDs: [OrderID]) {
        self.cell = cell
        self.orderIDs = orderIDs
    }

    public func iteration(client: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void) async {
        let clock = ContinuousClock()
        let start = clock.now
        let id = orderIDs[QueryScenarios.index(client: client, sequence: sequence, count: orderIDs.count)]
        do {
            _ = try await cell.order(id, consistency: .strong)
            record(QueryScenarios.operation, clock.now - start, .ok)
        } catch let error as OrderError {
            record(QueryScenarios.operation, clock.now - start, .failed(error.code.rawValue))
        } catch {
            record(QueryScenarios.operation, clock.now - start, .failed("cell_failure"))
        }
    }
}

/// `GET /v1/orders/{id}` of orders that exist, through an OrderCell endpoint.
public struct HTTPQueryScenario: EventLoopBenchScenario {
    public let host: String
    public let port: Int
    public let client: BenchHTTPClient
    public let paths: [String]
    public var firstOperation: String { QueryScenarios.operation }

    public init(host: String, port: Int, client: BenchHTTPClient, orderIDs: [OrderID]) {
        self.host = host
        self.port = port
        self.client = client
        self.paths = orderIDs.map { "/v1/orders/\($0)" }
    }

    public func iteration(client number: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void) async {
        try? await read(on: nil, client: number, sequence: sequence, record: record).get()
    }

    public func iteration(
        on eventLoop: any EventLoop, client number: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void
    ) -> EventLoopFuture<Void> {
        read(on: eventLoop, client: number, sequence: sequence, record: record)
    }

    private func read(
        on eventLoop: (any EventLoop)?, client number: Int, sequence: Int, record: @escaping @Sendable (String, Duration, OperationOutcome) -> Void
    ) -> EventLoopFuture<Void> {
        let path = paths[QueryScenarios.index(client: number, sequence: sequence, count: paths.count)]
        return client.recordedGet(host: host, port: port, path: path, as: QueryScenarios.operation, on: eventLoop, record: record)
    }
}
