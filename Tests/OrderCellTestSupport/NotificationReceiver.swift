import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MerchantNotifications
import NIOCore
import Synchronization

/// A merchant's notification endpoint for tests: a real HTTP server on a
/// free loopback port that records every notification it receives and
/// answers each path as a test scripts it (acknowledge, fail with a status,
/// or hang past the notifier's time limit).
public final class NotificationReceiver: Sendable {
    public struct Received: Sendable {
        public var path: String
        public var eventID: String
        public var timestamp: String
        public var signature: String
        public var body: String
        public var receivedAt: ContinuousClock.Instant

        /// Whether the signature checks out with `secret`, at the timestamp it names (not the wall clock:
        /// tests run on a clock of their own).
        public func isSigned(with secret: String) -> Bool {
            guard let sent = Int64(timestamp) else { return false }
            return NotificationSignature.verify(body: Array(body.utf8), timestamp: sent, signature: signature, secret: secret, now: sent)
        }

        /// The body's JSON object.
        public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
    }

    public enum Answer: Sendable {
        case acknowledge
        case fail(Int)
        /// Answers nothing for this long.
        case hang(Duration)
        /// Acknowledges after this long (a slow merchant: attempts are under way for a while).
        case acknowledgeAfter(Duration)
    }

    private struct Script {
        var queued: [String: [Answer]] = [:]
        var standing: [String: Answer] = [:]
    }
    private let received = Mutex<[Received]>([])
    private let script = Mutex(Script())
    public let port: Int

    private init(port: Int) { self.port = port }

    /// The URL of `path` on this receiver.
    public func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// The next requests to `path` get `answers`, one each, then the standing answer (acknowledge unless set).
    public func queue(_ path: String, _ answers: [Answer]) { script.withLock { $0.queued[path, default: []] += answers } }

    /// Every request to `path` gets `answer` once the queued ones are used.
    public func answer(_ path: String, _ answer: Answer) { script.withLock { $0.standing[path] = answer } }

    /// What arrived at `path` (every path when nil), in arrival order.
    public func notifications(_ path: String? = nil) -> [Received] {
        received.withLock { all in all.filter { path == nil || $0.path == path } }
    }

    /// Runs a receiver for the duration of `body`. Hanging requests are cut off when it ends.
    public static func run(_ body: (NotificationReceiver) async throws -> Void) async throws {
        var logger = Logger(label: "ordercell.test.receiver")
        logger.logLevel = .critical
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let box = Mutex<NotificationReceiver?>(nil)
        let router = Router()
        router.post("**") { request, _ -> Response in
            let collected = try await request.body.collect(upTo: 1 << 20)
            guard let receiver = box.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            let path = request.uri.path
            receiver.received.withLock {
                $0.append(
                    Received(
                        path: path, eventID: request.headers[HTTPField.Name("OrderCell-Event-Id")!] ?? "",
                        timestamp: request.headers[HTTPField.Name(NotificationSignature.timestampHeader)!] ?? "",
                        signature: request.headers[HTTPField.Name(NotificationSignature.signatureHeader)!] ?? "",
                        body: String(buffer: collected), receivedAt: .now
                    )
                )
            }
            let answer = receiver.script.withLock { script -> Answer in
                if var queued = script.queued[path], !queued.isEmpty {
                    let next = queued.removeFirst()
                    script.queued[path] = queued
                    return next
                }
                return script.standing[path] ?? .acknowledge
            }
            switch answer {
            case .acknowledge: return Response(status: .ok)
            case .fail(let status): return Response(status: HTTPResponse.Status(code: status))
            case .hang(let duration), .acknowledgeAfter(let duration):
                try await Task.sleep(for: duration)
                return Response(status: .ok)
            }
        }
        let application = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger
        )
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await application.runService() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { return }
            let receiver = NotificationReceiver(port: port)
            box.withLock { $0 = receiver }
            do {
                try await body(receiver)
            } catch {
                tasks.cancelAll()
                throw error
            }
            tasks.cancelAll()
        }
    }
}
