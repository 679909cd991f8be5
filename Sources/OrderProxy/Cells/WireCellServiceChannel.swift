import CellRPC
import CellRouting
import CellWire
import NIOCore
import SwiftProtobuf

/// A cell service instance spoken to over the cell wire protocol (one
/// multiplexed TCP connection, a frame each way per call).
struct WireCellServiceChannel: CellServiceChannel {
    let endpoint: String
    let connection: CellWireConnection

    init(_ endpoint: CellServiceEndpoint, text: String) {
        self.endpoint = text
        self.connection = CellWireConnection(host: endpoint.host, port: endpoint.port)
    }

    private func call<Reply: SwiftProtobuf.Message>(
        _ method: CellWireMethod, _ request: some SwiftProtobuf.Message, timeout: Duration
    ) async throws -> Reply {
        let answer = try await connection.call(
            method: method.rawValue, payload: try request.wirePayload(allocator: ByteBufferAllocator()), timeout: timeout
        )
        return try Reply(wirePayload: answer)
    }

    func createOrder(_ request: Ordercell_Cell_V1_CreateOrderRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_CreateOrderReply {
        try await call(.createOrder, request, timeout: timeout)
    }

    func applyCommand(_ request: Ordercell_Cell_V1_ApplyCommandRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_ApplyCommandReply {
        try await call(.applyCommand, request, timeout: timeout)
    }

    func getOrder(_ request: Ordercell_Cell_V1_GetOrderRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_GetOrderReply {
        try await call(.getOrder, request, timeout: timeout)
    }

    func listRefunds(_ request: Ordercell_Cell_V1_OrderRef, timeout: Duration) async throws -> Ordercell_Cell_V1_ListRefundsReply {
        try await call(.listRefunds, request, timeout: timeout)
    }

    func listEvents(_ request: Ordercell_Cell_V1_OrderRef, timeout: Duration) async throws -> Ordercell_Cell_V1_ListEventsReply {
        try await call(.listEvents, request, timeout: timeout)
    }

    func setFault(_ request: RPCFault, timeout: Duration) async throws -> RPCFault {
        try await call(.setFault, request, timeout: timeout)
    }

    func getFault(timeout: Duration) async throws -> RPCFault {
        try await call(.getFault, Ordercell_Cell_V1_GetFaultRequest(), timeout: timeout)
    }

    func run() async {}
    func shutdown() { connection.shutdown() }
}
