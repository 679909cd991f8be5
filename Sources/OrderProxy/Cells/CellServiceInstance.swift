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
        _ method: CellMethod, _ request: some SwiftProtobuf.Message, timeout: Duration, minimumPeerMinor: UInt16 = 0
    ) async throws -> Reply {
        let answer = try await connection.call(
            method: method.rawValue, payload: try request.framePayload(allocator: ByteBufferAllocator()), timeout: timeout,
            minimumPeerMinor: minimumPeerMinor
        )
        return try Reply(framePayload: answer)
    }

    func createOrder(_ request: Ordercell_Cell_V1_CreateOrderRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_CreateOrderReply {
        try await call(.createOrder, request, timeout: timeout)
    }

    func applyCommand(_ request: Ordercell_Cell_V1_ApplyCommandRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_ApplyCommandReply {
        // A cell service that would ignore the owner must never get it: it would act for any merchant.
        try await call(.applyCommand, request, timeout: timeout, minimumPeerMinor: request.ownerMerchantID.isEmpty ? 0 : CellHello.ownerCheckedMinor)
    }

    func getOrder(_ request: Ordercell_Cell_V1_GetOrderRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_GetOrderReply {
        try await call(.getOrder, request, timeout: timeout)
    }

    func listRefunds(_ request: Ordercell_Cell_V1_OrderRef, timeout: Duration) async throws -> Ordercell_Cell_V1_ListRefundsReply {
        try await call(.listRefunds, request, timeout: timeout, minimumPeerMinor: request.ownerMerchantID.isEmpty ? 0 : CellHello.ownerCheckedMinor)
    }

    func listEvents(_ request: Ordercell_Cell_V1_OrderRef, timeout: Duration) async throws -> Ordercell_Cell_V1_ListEventsReply {
        try await call(.listEvents, request, timeout: timeout, minimumPeerMinor: request.ownerMerchantID.isEmpty ? 0 : CellHello.ownerCheckedMinor)
    }

    func bindKey(_ request: Ordercell_Cell_V1_BindKeyRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_KeyBindingReply {
        try await call(.bindKey, request, timeout: timeout)
    }

    func moveKey(_ request: Ordercell_Cell_V1_MoveKeyRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_KeyBindingReply {
        try await call(.moveKey, request, timeout: timeout)
    }

    func claimKey(_ request: Ordercell_Cell_V1_ClaimKeyRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_ClaimKeyReply {
        try await call(.claimKey, request, timeout: timeout)
    }

    func getKeyEntry(_ request: Ordercell_Cell_V1_MerchantKeyRef, timeout: Duration) async throws -> Ordercell_Cell_V1_KeyEntryReply {
        try await call(.getKeyEntry, request, timeout: timeout)
    }

    func claimKeys(_ request: Ordercell_Cell_V1_ClaimKeysRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_ClaimKeysReply {
        try await call(.claimKeys, request, timeout: timeout)
    }

    func settleKey(_ request: Ordercell_Cell_V1_SettleKeyRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_SettleKeyReply {
        try await call(.settleKey, request, timeout: timeout)
    }

    func listMovedKeys(_ request: Ordercell_Cell_V1_ReconcileListRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_KeyEntryListReply {
        try await call(.listMovedKeys, request, timeout: timeout)
    }

    func findOrder(_ request: Ordercell_Cell_V1_MerchantKeyRef, timeout: Duration) async throws -> Ordercell_Cell_V1_GetOrderReply {
        try await call(.findOrder, request, timeout: timeout)
    }

    func fenceSlots(_ request: Ordercell_Cell_V1_FenceSlotsRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_FenceSlotsReply {
        try await call(.fenceSlots, request, timeout: timeout)
    }

    func exportKeys(_ request: Ordercell_Cell_V1_ExportKeysRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_ExportKeysReply {
        try await call(.exportKeys, request, timeout: timeout)
    }

    func importKeys(_ request: Ordercell_Cell_V1_ImportKeysRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_ImportKeysReply {
        try await call(.importKeys, request, timeout: timeout)
    }

    func dropKeys(_ request: Ordercell_Cell_V1_DropKeysRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_DropKeysReply {
        try await call(.dropKeys, request, timeout: timeout)
    }

    func readFeed(_ request: Ordercell_Cell_V1_FeedRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_FeedReply {
        try await call(.readFeed, request, timeout: timeout)
    }

    func notifierStatus(_ request: Ordercell_Cell_V1_NotifierStatusRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_NotifierStatusReply {
        try await call(.notifierStatus, request, timeout: timeout, minimumPeerMinor: CellHello.notifierMinor)
    }

    func redeliverNotifications(_ request: Ordercell_Cell_V1_RedeliverRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_RedeliverReply {
        try await call(.redeliverNotifications, request, timeout: timeout, minimumPeerMinor: CellHello.notifierMinor)
    }

    func listUnverified(_ request: Ordercell_Cell_V1_ReconcileListRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_OrderListReply {
        try await call(.listUnverified, request, timeout: timeout)
    }

    func setKeyStatus(_ request: Ordercell_Cell_V1_SetKeyStatusRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_SetKeyStatusReply {
        try await call(.setKeyStatus, request, timeout: timeout)
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
