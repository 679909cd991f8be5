import CellRPC
import CellWire
import NIOCore
import SwiftProtobuf

/// The cell RPC of a cell service over the cell wire protocol: the same
/// messages and answers as over gRPC (``CellRPCService``), one frame each
/// way instead of an HTTP/2 stream.
public struct CellWireService: CellWireResponder {
    let rpc: CellRPCService

    public init(cell: CellService) { self.rpc = CellRPCService(cell: cell) }

    /// A method number the protocol does not know.
    struct UnknownMethod: Error, CustomStringConvertible {
        let method: UInt8
        var description: String { "the cell RPC has no method \(method)" }
    }

    public func answer(
        method: UInt8, payload: ByteBuffer, deadline: ContinuousClock.Instant?, allocator: ByteBufferAllocator
    ) async throws -> ByteBuffer {
        guard let method = CellWireMethod(rawValue: method) else { throw UnknownMethod(method: method) }
        switch method {
        case .createOrder:
            return try await rpc.createOrder(try .init(wirePayload: payload), deadline: deadline).wirePayload(allocator: allocator)
        case .applyCommand: return try await rpc.applyCommand(try .init(wirePayload: payload)).wirePayload(allocator: allocator)
        case .getOrder: return try await rpc.getOrder(try .init(wirePayload: payload)).wirePayload(allocator: allocator)
        case .listRefunds: return try await rpc.listRefunds(try .init(wirePayload: payload)).wirePayload(allocator: allocator)
        case .listEvents: return try await rpc.listEvents(try .init(wirePayload: payload)).wirePayload(allocator: allocator)
        case .setFault: return try rpc.setFault(try .init(wirePayload: payload)).wirePayload(allocator: allocator)
        case .getFault: return try rpc.getFault().wirePayload(allocator: allocator)
        }
    }
}
