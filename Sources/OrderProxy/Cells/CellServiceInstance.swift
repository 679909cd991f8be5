import CellProtocol
import CellRouting
import NIOCore
import SwiftProtobuf

/// One cell service instance as the proxy calls it: the cell protocol's
/// methods over one multiplexed connection, a frame each way per call.
///
/// A method throws when the instance failed or could not be reached; the
/// refusals of the cell come back inside the replies.
struct CellServiceInstance: Sendable {
    let endpoint: CellServiceEndpoint
    let connection: CellProtocolConnection

    init(_ endpoint: CellServiceEndpoint, tls: CellClientTLS) {
        self.endpoint = endpoint
        self.connection = CellProtocolConnection(host: endpoint.host, port: endpoint.port, tls: tls)
    }

    private func call<Reply: SwiftProtobuf.Message>(
        _ method: CellMethod, _ request: some SwiftProtobuf.Message, timeout: Duration
    ) async throws -> Reply {
        let answer = try await connection.call(
            method: method.rawValue, payload: try request.framePayload(allocator: ByteBufferAllocator()), timeout: timeout
        )
        return try Reply(framePayload: answer)
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

    func shutdown() { connection.shutdown() }

    func shutdownAndWait() async { await connection.shutdownAndWait() }
}
