import NIOCore

/// One message of the cell wire protocol: a call, its answer, or the
/// report that the cell failed to answer it.
///
/// On the wire (all integers big-endian):
///
///     u32 length of what follows · u8 kind · u8 method · u32 call id ·
///     u32 argument · payload
///
/// The argument is the milliseconds the caller still waits in a call, the
/// ``FailureCode`` in a failure, and 0 in an answer. Clients older than the
/// failure code read a failure's text only, which has not changed. Servers
/// older than it send 0, which reads as a plain ``FailureCode/failed``: a
/// proxy newer than a cell service would then pass the service over when it
/// was only too busy to start a call — release cell services before proxies.
///
/// The server drops a call whose caller has stopped waiting before it
/// starts it: a create the proxy gave up on (and may have made in another
/// cell) is never stored late.
/// A connection starts with the client's four-byte preamble ``preamble``
/// (`OCW1`), so a peer speaking another protocol is turned away at once.
/// Calls are multiplexed: answers carry their call's id and may come in any
/// order.
public struct WireFrame: Sendable, Equatable {
    /// What a frame is.
    public enum Kind: UInt8, Sendable {
        /// A call from the client.
        case call = 1
        /// The answer to a call (the method's reply message).
        case answer = 2
        /// The cell could not answer the call; the argument is a ``FailureCode``, the payload a UTF-8 reason.
        case failure = 3
    }

    /// Why a call got a failure rather than an answer. The client needs to
    /// tell a call the server never started (safe to send elsewhere, and no
    /// sign the service is broken) from one that failed.
    public enum FailureCode: UInt32, Sendable {
        /// The call failed, or may have run before failing; the payload says why.
        case failed = 0
        /// The server is shutting down and did not start the call.
        case goingAway = 1
        /// The caller's deadline passed before the server could start the call; it was not run.
        case expiredBeforeStart = 2
    }

    public var kind: Kind
    public var method: UInt8
    public var callID: UInt32
    /// The header's last word: the caller's timeout in a call, the failure code in a failure.
    public var argument: UInt32
    public var payload: ByteBuffer

    public init(kind: Kind, method: UInt8, callID: UInt32, argument: UInt32 = 0, payload: ByteBuffer) {
        self.kind = kind
        self.method = method
        self.callID = callID
        self.argument = argument
        self.payload = payload
    }

    /// In a call: how long the caller waits for the answer, from when it sent the call (0: no deadline).
    public var timeoutMilliseconds: UInt32 { kind == .call ? argument : 0 }

    /// In a failure: the error it stands for; a code this build does not know reads as a plain failure.
    public var failure: CellWireError? {
        guard kind == .failure else { return nil }
        switch FailureCode(rawValue: argument) ?? .failed {
        case .goingAway: return .goingAway
        case .expiredBeforeStart: return .expiredBeforeStart
        case .failed: return .failed(String(buffer: payload))
        }
    }

    /// The bytes a client sends first on every connection.
    public static let preamble: [UInt8] = Array("OCW1".utf8)
    /// Kind, method, call id and argument.
    static let headerSize = 10
    /// Frames larger than this close the connection (no cell message comes near it).
    public static let maximumSize = 8 << 20
}

/// What went wrong with a connection or a call of the cell wire protocol.
public enum CellWireError: Error, Equatable, CustomStringConvertible {
    /// The peer did not start with the protocol's preamble.
    case badPreamble
    /// A frame announced more than ``WireFrame/maximumSize`` bytes.
    case frameTooLarge(Int)
    /// A frame announced fewer bytes than its header takes.
    case frameTooShort(Int)
    /// A frame's kind byte is not one the protocol knows.
    case unknownKind(UInt8)
    /// The connection closed before the call was answered.
    case connectionClosed
    /// The cell service could not be reached.
    case unreachable(String)
    /// The call was not answered within its deadline.
    case deadlineExceeded
    /// The cell service answered that it could not serve the call.
    case failed(String)
    /// The client was shut down.
    case shutDown
    /// The server is shutting down and did not start the call.
    case goingAway
    /// The caller had stopped waiting before the server could start the call; it was not run.
    case expiredBeforeStart

    /// The code a failure frame carries for this error when the server sends it.
    var failureCode: WireFrame.FailureCode {
        switch self {
        case .goingAway: .goingAway
        case .expiredBeforeStart: .expiredBeforeStart
        default: .failed
        }
    }

    public var description: String {
        switch self {
        case .badPreamble: "the peer does not speak the cell wire protocol"
        case .frameTooLarge(let size): "a frame of \(size) bytes is larger than \(WireFrame.maximumSize)"
        case .frameTooShort(let size): "a frame of \(size) bytes is shorter than its header"
        case .unknownKind(let kind): "unknown frame kind \(kind)"
        case .connectionClosed: "the connection to the cell service closed before it answered"
        case .unreachable(let reason): "the cell service cannot be reached: \(reason)"
        case .deadlineExceeded: "the cell service did not answer within the deadline"
        case .failed(let reason): "the cell service failed: \(reason)"
        case .shutDown: "the cell client is shut down"
        case .goingAway: "the cell service is shutting down and did not start the call"
        case .expiredBeforeStart: "the call's deadline passed before the cell service could start it; it was not run"
        }
    }
}

extension ByteBuffer {
    /// Writes `frame`'s length, header and payload.
    mutating func writeWireFrame(kind: WireFrame.Kind, method: UInt8, callID: UInt32, argument: UInt32 = 0, payload: ByteBuffer) {
        precondition(payload.readableBytes <= WireFrame.maximumSize - WireFrame.headerSize, "frame payloads are checked against the maximum first")
        writeInteger(UInt32(WireFrame.headerSize + payload.readableBytes))
        writeInteger(kind.rawValue)
        writeInteger(method)
        writeInteger(callID)
        writeInteger(argument)
        writeImmutableBuffer(payload)
    }
}

/// Cuts the byte stream into ``WireFrame``s, checking the preamble first when serving.
struct WireFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = WireFrame

    private var awaitingPreamble: Bool

    init(expectsPreamble: Bool) {
        self.awaitingPreamble = expectsPreamble
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if awaitingPreamble {
            guard let bytes = buffer.getBytes(at: buffer.readerIndex, length: WireFrame.preamble.count) else { return .needMoreData }
            guard bytes == WireFrame.preamble else { throw CellWireError.badPreamble }
            buffer.moveReaderIndex(forwardBy: WireFrame.preamble.count)
            awaitingPreamble = false
        }
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        let size = Int(length)
        guard size <= WireFrame.maximumSize else { throw CellWireError.frameTooLarge(size) }
        guard size >= WireFrame.headerSize else { throw CellWireError.frameTooShort(size) }
        guard buffer.readableBytes >= 4 + size else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let kindByte: UInt8 = buffer.readInteger()!
        let method: UInt8 = buffer.readInteger()!
        let callID: UInt32 = buffer.readInteger()!
        let argument: UInt32 = buffer.readInteger()!
        let payload = buffer.readSlice(length: size - WireFrame.headerSize)!
        guard let kind = WireFrame.Kind(rawValue: kindByte) else { throw CellWireError.unknownKind(kindByte) }
        context.fireChannelRead(
            Self.wrapInboundOut(WireFrame(kind: kind, method: method, callID: callID, argument: argument, payload: payload))
        )
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
