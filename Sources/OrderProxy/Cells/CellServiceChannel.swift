import CellRPC

/// One cell service instance as the proxy calls it: the cell RPC's methods
/// over one transport (gRPC, or the cell wire protocol).
///
/// A method throws when the instance failed or could not be reached; the
/// refusals of the cell come back inside the replies.
protocol CellServiceChannel: Sendable {
    var endpoint: String { get }
    func createOrder(_ request: Ordercell_Cell_V1_CreateOrderRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_CreateOrderReply
    func applyCommand(_ request: Ordercell_Cell_V1_ApplyCommandRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_ApplyCommandReply
    func getOrder(_ request: Ordercell_Cell_V1_GetOrderRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_GetOrderReply
    func listRefunds(_ request: Ordercell_Cell_V1_OrderRef, timeout: Duration) async throws -> Ordercell_Cell_V1_ListRefundsReply
    func listEvents(_ request: Ordercell_Cell_V1_OrderRef, timeout: Duration) async throws -> Ordercell_Cell_V1_ListEventsReply
    func setFault(_ request: RPCFault, timeout: Duration) async throws -> RPCFault
    func getFault(timeout: Duration) async throws -> RPCFault
    /// Keeps the transport's connections going until shut down (a no-op for transports that need no driver).
    func run() async
    func shutdown()
}
