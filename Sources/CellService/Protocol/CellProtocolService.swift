import CellProtocol
import NIOCore
import OrderModel
import SwiftProtobuf

/// A cell service's face on the cell protocol: each call's request message
/// in, the cell's operation, its reply message out.
///
/// Refusals (``OrderError``) are answers and travel in the reply's
/// `refusal`; a failure of the cell (storage down, drill fault) is thrown,
/// goes back as a failure frame, and the proxy answers it with order retry
/// or `cell_unavailable`.
public struct CellProtocolService: CellProtocolResponder {
    public let cell: CellService

    public init(cell: CellService) { self.cell = cell }

    /// A method number the protocol does not know.
    struct UnknownMethod: Error, CustomStringConvertible {
        let method: UInt8
        var description: String { "the cell protocol has no method \(method)" }
    }

    /// The cell failed to serve a call (its storage, a drill fault); the text goes back in the failure frame.
    struct CellFailure: Error, CustomStringConvertible {
        let description: String
    }

    public func answer(
        method: UInt8, payload: ByteBuffer, deadline: ContinuousClock.Instant?, allocator: ByteBufferAllocator
    ) async throws -> ByteBuffer {
        guard let method = CellMethod(rawValue: method) else { throw UnknownMethod(method: method) }
        switch method {
        case .createOrder:
            return try await createOrder(try .init(framePayload: payload), deadline: deadline).framePayload(allocator: allocator)
        case .applyCommand: return try await applyCommand(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .getOrder: return try await getOrder(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .listRefunds: return try await listRefunds(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .listEvents: return try await listEvents(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .setFault: return try setFault(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .getFault: return try RPCFault(cell.currentFault).framePayload(allocator: allocator)
        }
    }

    // MARK: - The methods

    /// A create still queued for a group commit when its caller's deadline
    /// passes is never stored: the proxy may have made it in another cell.
    func createOrder(
        _ request: Ordercell_Cell_V1_CreateOrderRequest, deadline: ContinuousClock.Instant?
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

    /// An invalid fault is a failure of the call (the operator's tool reports it), not a refusal of an order.
    func setFault(_ request: RPCFault) throws -> RPCFault {
        do {
            cell.inject(try request.domain())
        } catch {
            throw CellFailure(description: error.detail)
        }
        return RPCFault(cell.currentFault)
    }

    /// Lets refusals through and names the cell in every failure.
    private func answering<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let refusal as OrderError {
            throw refusal
        } catch {
            throw CellFailure(description: "cell \(cell.cell): \(error)")
        }
    }
}
