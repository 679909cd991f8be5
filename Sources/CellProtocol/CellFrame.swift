import NIOCore
import OrderModel

/// One message of the cell protocol: a call, its answer, or the report
/// that the cell failed to answer it (docs/cell-protocol.md).
///
/// On the wire (all integers big-endian):
///
///     u32 length of what follows · u8 kind · u8 method · u32 call id ·
///     u32 argument · payload
///
/// The argument is the milliseconds the caller still waits in a call, the
/// ``FailureCode`` in a failure, and 0 in an answer. A code a peer does not
/// know reads as a plain ``FailureCode/failed``.
///
/// The server drops a call whose caller has stopped waiting before it
/// starts it: a create the proxy gave up on (and may have made in another
/// cell) is never stored late.
/// A connection starts with a ``CellHello`` each way (after the TLS
/// handshake, when there is one), so a peer speaking another protocol or
/// another major version is turned away at once with a clear error.
/// Calls are multiplexed: answers carry their call's id and may come in any
/// order.
public struct CellFrame: Sendable, Equatable {
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
    public var failure: CellProtocolError? {
        guard kind == .failure else { return nil }
        switch FailureCode(rawValue: argument) ?? .failed {
        case .goingAway: return .goingAway
        case .expiredBeforeStart: return .expiredBeforeStart
        case .failed: return .failed(String(buffer: payload))
        }
    }

    /// Kind, method, call id and argument.
    static let headerSize = 10
    /// Frames larger than this close the connection (no cell message comes near it).
    public static let maximumSize = 8 << 20
}

/// The first eight bytes each side sends on a connection: the protocol's
/// magic `OCCP` and the version the sender speaks (u16 major, u16 minor).
///
/// Peers of one major version understand each other whatever their minor
/// versions (a minor version only adds what an older peer may ignore: a
/// failure code, a method it answers as unknown). A server refuses a client
/// of another major version after sending its own hello, so that the client
/// can say which versions met; the client refuses a server likewise.
public struct CellHello: Sendable, Equatable, CustomStringConvertible {
    public var major: UInt16
    public var minor: UInt16

    public init(major: UInt16, minor: UInt16) {
        self.major = major
        self.minor = minor
    }

    /// The version this build speaks.
    /// 1.1: ApplyCommand, ListRefunds and ListEvents check `owner_merchant_id`; a client sends it only to 1.1 or later.
    /// 1.2: NotifierStatus and Redeliver (the cell's notifier); a client sends them only to 1.2 or later.
    public static let current = CellHello(major: 1, minor: 2)
    /// The first minor version whose cell services check `owner_merchant_id`.
    public static let ownerCheckedMinor: UInt16 = 1
    /// The first minor version whose cell services answer NotifierStatus and Redeliver.
    public static let notifierMinor: UInt16 = 2
    /// The bytes that open a hello.
    public static let magic: [UInt8] = Array("OCCP".utf8)
    static let size = 8

    public var description: String { "\(major).\(minor)" }

    /// Whether a peer saying `other` can be spoken to.
    public func accepts(_ other: CellHello) -> Bool { other.major == major }
}

extension ByteBuffer {
    mutating func writeCellHello(_ hello: CellHello) {
        writeBytes(CellHello.magic)
        writeInteger(hello.major)
        writeInteger(hello.minor)
    }
}

/// What went wrong with a connection or a call of the cell protocol.
public enum CellProtocolError: Error, Equatable, CustomStringConvertible {
    /// The peer did not start with the protocol's hello (`firstByte` 0x16: it
    /// began a TLS handshake; 0x15: it sent a TLS alert, so it requires TLS).
    case badHello(firstByte: UInt8)
    /// The peer speaks a major version of the protocol this side does not.
    case unsupportedVersion(peer: CellHello, ours: CellHello)
    /// The TLS handshake with the cell service failed (or TLS was expected and not offered).
    case tlsFailed(String)
    /// A frame announced more than ``CellFrame/maximumSize`` bytes.
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
    var failureCode: CellFrame.FailureCode {
        switch self {
        case .goingAway: .goingAway
        case .expiredBeforeStart: .expiredBeforeStart
        default: .failed
        }
    }

    public var description: String {
        switch self {
        case .badHello(let first) where first == 0x16:
            "the peer began a TLS handshake, and this side serves the cell protocol without TLS"
        case .badHello(let first) where first == 0x15:
            "the peer answered with a TLS alert: it requires TLS, and this side speaks the cell protocol without TLS"
        case .badHello: "the peer does not speak the cell protocol (no OCCP hello)"
        case .unsupportedVersion(let peer, let ours):
            "the peer speaks cell protocol version \(peer), this side \(ours): major versions differ, nothing can be exchanged"
        case .tlsFailed(let reason): "TLS with the cell service failed: \(reason)"
        case .frameTooLarge(let size): "a frame of \(size) bytes is larger than \(CellFrame.maximumSize)"
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

extension CellProtocolError: CellCallFailure {
    /// A call failed before its connection was made, or refused by a cell
    /// service that had not started it, was not run; a call whose answer
    /// did not come (closed, late, unreadable) or that failed in the cell
    /// may have been.
    public var mayHaveRun: Bool {
        switch self {
        case .badHello, .unsupportedVersion, .tlsFailed, .unreachable, .goingAway, .expiredBeforeStart: false
        case .frameTooLarge, .frameTooShort, .unknownKind, .connectionClosed, .deadlineExceeded, .failed, .shutDown: true
        }
    }
}

extension ByteBuffer {
    /// Writes `frame`'s length, header and payload.
    mutating func writeCellFrame(kind: CellFrame.Kind, method: UInt8, callID: UInt32, argument: UInt32 = 0, payload: ByteBuffer) {
        precondition(payload.readableBytes <= CellFrame.maximumSize - CellFrame.headerSize, "frame payloads are checked against the maximum first")
        writeInteger(UInt32(CellFrame.headerSize + payload.readableBytes))
        writeInteger(kind.rawValue)
        writeInteger(method)
        writeInteger(callID)
        writeInteger(argument)
        writeImmutableBuffer(payload)
    }
}

/// Cuts the byte stream into ``CellFrame``s after the peer's ``CellHello``,
/// which it passes on as a user inbound event.
struct CellFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = CellFrame

    private var awaitingHello: Bool

    /// - Parameter expectsHello: false only where a test feeds frames alone.
    init(expectsHello: Bool = true) {
        self.awaitingHello = expectsHello
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if awaitingHello {
            // A wrong first byte is refused at once, without waiting for the rest of a hello.
            if let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), first != CellHello.magic[0] {
                throw CellProtocolError.badHello(firstByte: first)
            }
            guard let bytes = buffer.getBytes(at: buffer.readerIndex, length: CellHello.size) else { return .needMoreData }
            guard bytes.prefix(4).elementsEqual(CellHello.magic) else { throw CellProtocolError.badHello(firstByte: bytes[0]) }
            buffer.moveReaderIndex(forwardBy: 4)
            let hello = CellHello(major: buffer.readInteger()!, minor: buffer.readInteger()!)
            awaitingHello = false
            context.fireUserInboundEventTriggered(hello)
            return .continue
        }
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        let size = Int(length)
        guard size <= CellFrame.maximumSize else { throw CellProtocolError.frameTooLarge(size) }
        guard size >= CellFrame.headerSize else { throw CellProtocolError.frameTooShort(size) }
        guard buffer.readableBytes >= 4 + size else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let kindByte: UInt8 = buffer.readInteger()!
        let method: UInt8 = buffer.readInteger()!
        let callID: UInt32 = buffer.readInteger()!
        let argument: UInt32 = buffer.readInteger()!
        let payload = buffer.readSlice(length: size - CellFrame.headerSize)!
        guard let kind = CellFrame.Kind(rawValue: kindByte) else { throw CellProtocolError.unknownKind(kindByte) }
        context.fireChannelRead(
            Self.wrapInboundOut(CellFrame(kind: kind, method: method, callID: callID, argument: argument, payload: payload))
        )
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
