import NIOCore
import SwiftProtobuf

/// The cell protocol's methods, by number; each carries the protobuf
/// messages of `cell.proto` (docs/cell-protocol.md).
public enum CellMethod: UInt8, Sendable, CaseIterable {
    case createOrder = 1
    case applyCommand = 2
    case getOrder = 3
    case listRefunds = 4
    case listEvents = 5
    case setFault = 6
    case getFault = 7
    case bindKey = 8
    case moveKey = 9
    case claimKey = 10
    case getKeyEntry = 11
    case findOrder = 12
    case listUnverified = 13
    case listMovedKeys = 14
    case setKeyStatus = 15
    case settleKey = 16
    case claimKeys = 17
    case fenceSlots = 18
    case exportKeys = 19
    case importKeys = 20
    case dropKeys = 21
    case readFeed = 22
    case notifierStatus = 23
    case redeliverNotifications = 24
}

extension SwiftProtobuf.Message {
    /// Decodes a message from a frame's payload.
    public init(framePayload payload: ByteBuffer) throws {
        try self.init(serializedBytes: Array(payload.readableBytesView))
    }

    /// Encodes the message as a frame's payload.
    public func framePayload(allocator: ByteBufferAllocator) throws -> ByteBuffer {
        let bytes: [UInt8] = try serializedBytes()
        var buffer = allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return buffer
    }
}
