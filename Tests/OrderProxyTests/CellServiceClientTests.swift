import OrderCellPlatform
import CellRouting
@testable import CellService
import CellStorage
import CellProtocol
import Foundation
import GRDB
import Logging
import OrderCellTestSupport
import OrderModel
import OrderProxy
import Testing

/// One cell service served over the cell protocol, the way `ordercell cell` does.
private struct ServedCell {
    let service: CellService
    /// The cell's SQLite file.
    let path: String
    let server: CellProtocolServer

    var endpoint: CellServiceEndpoint { CellServiceEndpoint(host: "127.0.0.1", port: server.port) }

    static func start() async throws -> ServedCell {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-rpc-\(UUID().uuidString).sqlite").path
        // A long busy timeout: a test holds the write lock for seconds on purpose.
        let store = try await SQLiteOrderStore.open(path: path, busyTimeoutSeconds: 30)
        let service = CellService(cell: CellID(3)!, store: store, groupCommit: GroupCommitConfiguration(maximumWait: .seconds(10)), clock: wallClock)
        let server = try await CellProtocolServer.bind(
            host: "127.0.0.1", port: 0, responder: CellProtocolService(cell: service), tls: .disabled, logger: Logger(label: "cell-rpc-test")
        )
        return ServedCell(service: service, path: path, server: server)
    }

    func stop() async {
        await server.shutdown()
    }
}

@Suite("Cell service client over the cell protocol")
struct CellServiceClientTests {
    @Test("the proxy's client gets a cell service's answers, refusals and failures over the cell protocol")
    func answers() async throws {
        let cell = try await ServedCell.start()
        // Nothing here waits on purpose: a deadline only for a stuck call, long enough for a machine starting every suite at once.
        let client = CellServiceClient(cell: CellID(3)!, endpoints: [cell.endpoint], tls: .disabled, timeout: .seconds(20))
        defer { client.shutdown() }

        let request = try CreateOrderRequest(merchantID: "shop", outTradeNo: "t-1", amount: 900, currency: "EUR", description: "tea", expireSeconds: nil)
        let created = try await client.create(request)
        #expect(created.created && created.order.amount == 900 && created.order.id.cell == CellID(3)!)
        let replay = try await client.create(request)
        #expect(!replay.created && replay.order == created.order)
        let conflicting = try CreateOrderRequest(merchantID: "shop", outTradeNo: "t-1", amount: 901, currency: "EUR", description: nil, expireSeconds: nil)
        await #expect { try await client.create(conflicting) } throws: { ($0 as? OrderError)?.code == .outTradeNoConflict }

        let paid = try await client.apply(.pay(paymentID: "p-1", amount: 900, keyClaimed: true), to: created.order.id)
        #expect(paid.changed && paid.order.status == .paid)
        let refunded = try await client.apply(.refund(refundID: "r-1", amount: 300, reason: "broken"), to: created.order.id)
        #expect(refunded.refund?.amount == 300 && refunded.order.refundedAmount == 300)
        #expect(try await client.order(created.order.id, consistency: .strong) == refunded.order)
        #expect(try await client.refunds(of: created.order.id).map(\.refundID) == ["r-1"])
        #expect(try await client.events(of: created.order.id).count >= 3)
        await #expect { try await client.apply(.close, to: created.order.id) } throws: { $0 is OrderError }

        let unknown = try OrderID(cell: CellID(3)!, createdAt: created.order.createdAt, sequence: 999_999)
        await #expect { try await client.order(unknown, consistency: .strong) } throws: { ($0 as? OrderError)?.code == .orderNotFound }

        // Over the wire, as a merchant: another merchant's order is one the cell does not have.
        for call in [
            { _ = try await client.apply(.close, to: created.order.id, ownedBy: "another-shop") },
            { _ = try await client.refunds(of: created.order.id, ownedBy: "another-shop") },
            { _ = try await client.events(of: created.order.id, ownedBy: "another-shop") },
        ] as [@Sendable () async throws -> Void] {
            await #expect { try await call() } throws: { ($0 as? OrderError) == OrderError(.orderNotFound, "no order \(created.order.id)") }
        }
        #expect(try await client.events(of: created.order.id, ownedBy: "shop").count >= 3)
        // The cell's event feed over the protocol: every event of the order, in order, from the start.
        let feed = try await client.eventFeed(after: .start, limit: 100).filter { $0.event.orderID == created.order.id }
        #expect(feed.map(\.event.sequence) == Array(1...feed.count) && feed.count >= 3 && feed.allSatisfy { $0.merchantID == "shop" })
        await #expect { _ = try await client.eventFeed(after: .start, limit: 0) } throws: { ($0 as? OrderError)?.code == .invalidRequest }
        try await client.setFault(.fail, by: "admin")
        #expect(try await client.fault() == .fail)
        // A failure of the cell is not a refusal: the proxy retries creates elsewhere.
        await #expect { try await client.create(request) } throws: { !($0 is OrderError) }
        try await client.setFault(.none, by: "admin")
        // A fault for one call: that call fails, the next is served, and the fault is gone.
        try await client.setFault(.fail, calls: 1, by: "admin")
        await #expect { try await client.order(created.order.id, consistency: .strong) } throws: { !($0 is OrderError) }
        #expect(try await client.fault() == CellFault.none)
        let replayed = try await client.create(request)
        #expect(!replayed.created && replayed.order.id == created.order.id && replayed.order.status == refunded.order.status)
        await cell.stop()
    }

    @Test("a create whose caller gave up while it waited for a group commit is never stored")
    func queuedCreatePastItsDeadline() async throws {
        let cell = try await ServedCell.start()
        // Long enough for a busy machine to get both creates to the cell service before their callers give up.
        let client = CellServiceClient(cell: CellID(3)!, endpoints: [cell.endpoint], tls: .disabled, timeout: .seconds(2))
        defer { client.shutdown() }
        func request(_ key: String) throws -> CreateOrderRequest {
            try CreateOrderRequest(merchantID: "shop", outTradeNo: key, amount: 100, currency: "EUR", description: nil, expireSeconds: nil)
        }
        // Connected, and the order sequence's first segment reserved, before the store is held up
        // (a first call on a busy machine may miss its deadline while the connection opens).
        var warmedUp = false
        for _ in 0..<5 where !warmedUp { warmedUp = (try? await client.create(try request("warm-up"))) != nil }
        try #require(warmedUp)

        // Another connection holds SQLite's write lock: the next insert waits for it (busy timeout 5 s).
        let lock = try DatabaseQueue(path: cell.path)
        let holding = StopFlag()
        let release = StopFlag()
        defer { release.set() }
        let holder = Task {
            try await lock.writeWithoutTransaction { db in
                try db.execute(sql: "BEGIN IMMEDIATE")
                holding.set()
                while !release.isSet { usleep(5_000) }
                try db.execute(sql: "COMMIT")
            }
        }
        try await waitUntil { holding.isSet }
        // One create takes the group commit's slot and waits for the lock; the other queues behind it.
        let creates = ["held-1", "held-2"].map { key in Task { try await client.create(try request(key)) } }
        try await waitUntil { cell.service.groupCommitWaiting.count == 1 }
        let queued = try #require(cell.service.groupCommitWaiting.first)
        let queuedUntil = queued.deadline
        for create in creates {
            await #expect(throws: (any Error).self, "the caller gives up after 2 s") { try await create.value }
        }
        // The cell counts the deadline from when the call reached it, a little after the caller did.
        try await waitUntil { ContinuousClock.now > queuedUntil }
        release.set()
        try await holder.value

        // A create after the lock is gone queues behind the batch that holds the expired one, so it
        // is answered after that batch was decided (straight on the cell service: no deadline to miss).
        #expect(try await cell.service.create(try request("after")).created)
        var stored: [String] = []
        for key in ["held-1", "held-2"] where try await cell.service.store.order(merchantID: "shop", outTradeNo: key) != nil {
            stored.append(key)
        }
        #expect(stored.count == 1 && !stored.contains(queued.outTradeNo), "only the create that had reached the store is stored, not \(queued.outTradeNo), still queued: \(stored)")
        await cell.stop()
    }

    @Test("a dead instance of a cell is passed over for the next one")
    func deadInstance() async throws {
        let cell = try await ServedCell.start()
        let dead = try await CellProtocolServer.bind(
            host: "127.0.0.1", port: 0, responder: CellProtocolService(cell: cell.service), tls: .disabled, logger: Logger(label: "cell-rpc-test")
        )
        let deadPort = dead.port
        await dead.shutdown()
        let client = CellServiceClient(
            cell: CellID(3)!, endpoints: [CellServiceEndpoint(host: "127.0.0.1", port: deadPort), cell.endpoint], tls: .disabled, timeout: .seconds(20)
        )
        for number in 0..<6 {
            let request = try CreateOrderRequest(merchantID: "shop", outTradeNo: "d-\(number)", amount: 100, currency: "EUR", description: nil, expireSeconds: nil)
            #expect(try await client.create(request).created)
        }
        client.shutdown()
        await cell.stop()
    }

    @Test("every create goes to the cell's first instance, other calls take turns; while it is down the next takes the creates")
    func activeInstance() async throws {
        let first = try await ServedCell.start()
        let second = try await ServedCell.start()
        // Two instances of cell 3 over stores of their own, so that where an
        // order was written shows which instance took the call.
        // A generous deadline: with every suite running at once on two cores a first call can take seconds; this test is about which instance answers.
        let client = CellServiceClient(cell: CellID(3)!, endpoints: [first.endpoint, second.endpoint], tls: .disabled, timeout: .seconds(20))
        func create(_ key: String) async throws -> Order {
            let request = try CreateOrderRequest(merchantID: "shop", outTradeNo: key, amount: 100, currency: "EUR", description: nil, expireSeconds: nil)
            return try await client.create(request).order
        }
        func holder(of order: Order) async throws -> [Bool] {
            // By trade number: both stores hand out the same order ids.
            [
                try await first.service.store.order(merchantID: order.merchantID, outTradeNo: order.outTradeNo) != nil,
                try await second.service.store.order(merchantID: order.merchantID, outTradeNo: order.outTradeNo) != nil,
            ]
        }
        for number in 0..<6 {
            let held = try await holder(of: try await create("a-\(number)"))
            #expect(held == [true, false])
        }
        // Reads still take turns over both instances; each answers from its own store here.
        let probe = try await create("a-0")
        var answers: [String] = []
        for _ in 0..<4 { answers.append((try? await client.order(probe.id, consistency: .strong))?.outTradeNo ?? "-") }
        #expect(answers == ["a-0", "-", "a-0", "-"], "every other read went to the second instance, which does not hold the order")

        #expect(client.serviceInstances().map(\.active) == [true, false])
        #expect(client.serviceInstances().allSatisfy { !$0.passedOver && $0.lastFailure == nil })

        await first.stop()
        for number in 0..<4 {
            let held = try await holder(of: try await create("b-\(number)"))
            #expect(held == [false, true], "the first is down: the second takes the creates")
        }
        // What operators read at /admin/cells: the first passed over, with its failure, the second active.
        let seen = client.serviceInstances()
        #expect(seen.map(\.endpoint) == client.endpoints.map(\.description))
        #expect(seen.map(\.active) == [false, true] && seen.map(\.passedOver) == [true, false])
        #expect(seen[0].lastFailure != nil && (seen[0].millisecondsSinceLastFailure ?? -1) >= 0 && seen[1].lastFailure == nil)
        client.shutdown()
        await second.stop()
    }

    @Test("a service is passed over when it is broken, gone or hanging, not when it was only too busy to start a call")
    func whatPassesOver() {
        for error: CellProtocolError in [.unreachable("refused"), .connectionClosed, .deadlineExceeded, .goingAway, .failed("disk full"), .badHello(firstByte: 0x47), .tlsFailed("bad certificate"),
            .unsupportedVersion(peer: CellHello(major: 2, minor: 0), ours: .current)] {
            #expect(CellServiceClient.passesOver(error), "\(error)")
        }
        #expect(!CellServiceClient.passesOver(CellProtocolError.expiredBeforeStart))
        #expect(!CellServiceClient.passesOver(CellProtocolError.shutDown))
    }

    @Test("cell endpoints are host:port; wire:// of older releases reads as host:port; anything else is refused")
    func endpoints() throws {
        #expect(try CellServiceEndpoint(parsing: "10.0.0.7:9090") == CellServiceEndpoint(host: "10.0.0.7", port: 9090))
        #expect(try CellServiceEndpoint(parsing: "wire://cell-3.internal:9190") == CellServiceEndpoint(host: "cell-3.internal", port: 9190))
        #expect(try CellServiceEndpoint(parsing: "[::1]:9190").description == "[::1]:9190")
        for bad in ["grpc://cell-3:9090", "http://a:1", "wire://a", "a:0", ":80", "a b:80", "a/b:80", "a:99999", ""] {
            #expect(throws: OrderError.self) { try CellServiceEndpoint(parsing: bad) }
        }
        // In JSON (the routing table) an endpoint is its text, and a bad one does not decode.
        let encoded = try JSONEncoder().encode([CellServiceEndpoint(host: "h", port: 1)])
        #expect(String(decoding: encoded, as: UTF8.self) == #"["h:1"]"#)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([CellServiceEndpoint].self, from: Data(#"["grpc://h:1"]"#.utf8)) }
    }
}
