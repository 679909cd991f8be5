import CellRPC
import CellRouting
import GRPCCore
import GRPCNIOTransportHTTP2

/// A cell service instance spoken to over gRPC (HTTP/2, one long-lived multiplexed connection).
struct GRPCCellServiceChannel: CellServiceChannel {
    let endpoint: String
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    let stub: Ordercell_Cell_V1_Cell.Client<HTTP2ClientTransport.Posix>

    init(_ endpoint: CellServiceEndpoint, text: String) throws {
        self.endpoint = text
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 1.6, jitter: 0.2)
        config.connection.maxIdleTime = .seconds(300)
        let transport = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: endpoint.host, port: endpoint.port), transportSecurity: .plaintext, config: config
        )
        self.client = GRPCClient(transport: transport)
        self.stub = Ordercell_Cell_V1_Cell.Client(wrapping: client)
    }

    /// A call to an instance that is not connected fails at once instead of
    /// waiting for it, so the next instance is tried within the deadline.
    private func options(_ timeout: Duration) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.waitForReady = false
        return options
    }

    func createOrder(_ request: Ordercell_Cell_V1_CreateOrderRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_CreateOrderReply {
        try await stub.createOrder(request, options: options(timeout))
    }

    func applyCommand(_ request: Ordercell_Cell_V1_ApplyCommandRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_ApplyCommandReply {
        try await stub.applyCommand(request, options: options(timeout))
    }

    func getOrder(_ request: Ordercell_Cell_V1_GetOrderRequest, timeout: Duration) async throws -> Ordercell_Cell_V1_GetOrderReply {
        try await stub.getOrder(request, options: options(timeout))
    }

    func listRefunds(_ request: Ordercell_Cell_V1_OrderRef, timeout: Duration) async throws -> Ordercell_Cell_V1_ListRefundsReply {
        try await stub.listRefunds(request, options: options(timeout))
    }

    func listEvents(_ request: Ordercell_Cell_V1_OrderRef, timeout: Duration) async throws -> Ordercell_Cell_V1_ListEventsReply {
        try await stub.listEvents(request, options: options(timeout))
    }

    func setFault(_ request: RPCFault, timeout: Duration) async throws -> RPCFault {
        try await stub.setFault(request, options: options(timeout))
    }

    func getFault(timeout: Duration) async throws -> RPCFault {
        try await stub.getFault(Ordercell_Cell_V1_GetFaultRequest(), options: options(timeout))
    }

    func run() async { try? await client.runConnections() }
    func shutdown() { client.beginGracefulShutdown() }
}
