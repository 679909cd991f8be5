import CellRPC
import GRPCCore
import OrderModel

/// The cell RPC of a cell service: its methods over the protobuf messages,
/// served over gRPC (this type) and over the cell wire protocol
/// (``CellWireService``).
///
/// Refusals (``OrderError``) are answers and travel in the reply's
/// `refusal`; a failure of the cell (storage down, drill fault) is thrown —
/// the gRPC status `unavailable`, or a failure frame on the wire — and the
/// proxy answers it with order retry or `cell_unavailable`.
public struct CellRPCService: Ordercell_Cell_V1_Cell.SimpleServiceProtocol {
    public let cell: CellService

    public init(cell: CellService) { self.cell = cell }

    // MARK: - The methods, whatever the transport

    func createOrder(
        _ request: Ordercell_Cell_V1_CreateOrderRequest, deadline: ContinuousClock.Instant? = nil
    ) async throws -> Ordercell_Cell_V1_CreateOrderReply {
        var reply = Ordercell_Cell_V1_CreateOrderReply()
        do {
            let result = try await answering { try await cell.create(try request.domain(), deadline: deadline) }
            reply.order = RPCOrder(result.order)
            reply.created = result.created
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func applyCommand(_ request: Ordercell_Cell_V1_ApplyCommandRequest) async throws -> Ordercell_Cell_V1_ApplyCommandReply {
        var reply = Ordercell_Cell_V1_ApplyCommandReply()
        do {
            let result = try await answering {
                try await cell.apply(try request.domain(), to: try parseOrderID(request.orderID))
            }
            reply.order = RPCOrder(result.order)
            if let refund = result.refund { reply.refund = RPCRefund(refund) }
            reply.changed = result.changed
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func getOrder(_ request: Ordercell_Cell_V1_GetOrderRequest) async throws -> Ordercell_Cell_V1_GetOrderReply {
        var reply = Ordercell_Cell_V1_GetOrderReply()
        do {
            reply.order = RPCOrder(
                try await answering {
                    try await cell.order(try parseOrderID(request.orderID), consistency: request.eventual ? .eventual : .strong)
                }
            )
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func listRefunds(_ request: Ordercell_Cell_V1_OrderRef) async throws -> Ordercell_Cell_V1_ListRefundsReply {
        var reply = Ordercell_Cell_V1_ListRefundsReply()
        do {
            reply.refunds = try await answering { try await cell.refunds(of: try parseOrderID(request.orderID)) }.map(RPCRefund.init)
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func listEvents(_ request: Ordercell_Cell_V1_OrderRef) async throws -> Ordercell_Cell_V1_ListEventsReply {
        var reply = Ordercell_Cell_V1_ListEventsReply()
        do {
            reply.events = try await answering { try await cell.events(of: try parseOrderID(request.orderID)) }.map(RPCEvent.init)
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func setFault(_ request: RPCFault) throws -> RPCFault {
        do {
            cell.inject(try request.domain())
        } catch {
            throw RPCError(code: .invalidArgument, message: error.detail)
        }
        return RPCFault(cell.currentFault)
    }

    func getFault() -> RPCFault { RPCFault(cell.currentFault) }

    /// Lets refusals through and turns every failure of the cell into `unavailable`.
    private func answering<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let refusal as OrderError {
            throw refusal
        } catch {
            throw RPCError(code: .unavailable, message: "cell \(cell.cell): \(error)")
        }
    }

    // MARK: - gRPC

    /// Creates read the caller's `grpc-timeout`, which the single-message
    /// form of the method cannot see: a create still queued for a group
    /// commit when the caller gives up must never be stored.
    public func createOrder(
        request: ServerRequest<Ordercell_Cell_V1_CreateOrderRequest>, context: ServerContext
    ) async throws -> ServerResponse<Ordercell_Cell_V1_CreateOrderReply> {
        let deadline = GRPCTimeout.deadline(in: request.metadata, from: .now)
        return ServerResponse(message: try await createOrder(request.message, deadline: deadline), metadata: [:])
    }

    /// The single-message form the protocol requires; gRPC calls the form above, which has the deadline.
    public func createOrder(
        request: Ordercell_Cell_V1_CreateOrderRequest, context: ServerContext
    ) async throws -> Ordercell_Cell_V1_CreateOrderReply {
        try await createOrder(request)
    }

    public func applyCommand(
        request: Ordercell_Cell_V1_ApplyCommandRequest, context: ServerContext
    ) async throws -> Ordercell_Cell_V1_ApplyCommandReply {
        try await applyCommand(request)
    }

    public func getOrder(request: Ordercell_Cell_V1_GetOrderRequest, context: ServerContext) async throws -> Ordercell_Cell_V1_GetOrderReply {
        try await getOrder(request)
    }

    public func listRefunds(request: Ordercell_Cell_V1_OrderRef, context: ServerContext) async throws -> Ordercell_Cell_V1_ListRefundsReply {
        try await listRefunds(request)
    }

    public func listEvents(request: Ordercell_Cell_V1_OrderRef, context: ServerContext) async throws -> Ordercell_Cell_V1_ListEventsReply {
        try await listEvents(request)
    }

    public func setFault(request: RPCFault, context: ServerContext) async throws -> RPCFault {
        try setFault(request)
    }

    public func getFault(request: Ordercell_Cell_V1_GetFaultRequest, context: ServerContext) async throws -> RPCFault {
        getFault()
    }
}
