import AsyncHTTPClient
import Foundation
import MerchantNotifications
import NIOCore
import NIOHTTP1
import NIOPosix
import OrderCellPlatform
import OrderModel
import Synchronization

/// Sends one notification attempt over HTTP: a signed POST, acknowledged
/// by a 2xx within the attempt's time limit.
///
/// No redirect is followed (a 3xx is a failed attempt): a redirect could
/// point anywhere, the URL policy checked only the registered URL. The
/// host's addresses are resolved and checked against the policy before
/// every attempt (a name that resolved to a public address when it was
/// registered may resolve to a private one now); the connection then
/// resolves the name again, so a resolver answering differently within
/// that moment is not caught (docs/events.md says so).
public struct NotificationSender: Sendable {
    let http: HTTPClient
    /// Where names are resolved (`getaddrinfo` blocks its thread): threads of the sender's own, so that
    /// merchants' slow name servers hold up nothing else of the process.
    let resolvers: NIOThreadPool
    /// One resolution of a host at a time, its answer kept a while: a host whose name server hangs holds one
    /// thread, however many of its notifications are due.
    let resolutions = Resolutions()

    /// A sender with its own HTTP client (its own connection pools: a
    /// merchant's slow server never holds a connection the order path needs).
    public init() {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 8)
        configuration.decompression = .disabled
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        resolvers = NIOThreadPool(numberOfThreads: 16)
        resolvers.start()
    }

    /// Closes the client's connections and stops the resolvers' threads.
    public func shutdown() async {
        try? await http.shutdown()
        try? await resolvers.shutdownGracefully()
    }

    /// One attempt: `body` POSTed to `endpoint`, signed with `secret` at `timestamp` (Unix seconds).
    public func send(
        _ body: String, eventID: String, to endpoint: NotifyEndpoint, secret: String, timestamp: Int64, timeout: Duration
    ) async -> NotificationDelivery.Outcome {
        let policy = NotifyURLPolicy(allowPrivateNetworks: endpoint.allowPrivateNetwork)
        let target: NotifyURLPolicy.Target
        do {
            target = try policy.check(endpoint.url)
        } catch {
            return .failed("the notify URL is refused: \(error.detail)")
        }
        let started = ContinuousClock.now
        if !endpoint.allowPrivateNetwork {
            // Within the attempt's time: a name server that does not answer fails the attempt like a server that does not.
            let resolved = try? await withDeadline(timeout) { [resolvers, resolutions] in
                await resolutions.resolve(target.host) { await Self.resolve(target.host, on: resolvers) }
            }
            switch resolved ?? .failure(FailureReason("\(target.host) was not resolved within \(timeout.wholeMilliseconds) ms")) {
            case .failure(let why):
                return .failed(why.description)
            case .success(let addresses):
                if let refused = addresses.first(where: { !policy.allows(address: $0) }) {
                    return .failed("\(target.host) resolves to \(Self.text(refused)), a private or reserved address")
                }
            }
        }
        var request = HTTPClientRequest(url: endpoint.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "OrderCell-Notifier/1")
        request.headers.add(name: "OrderCell-Event-Id", value: eventID)
        request.headers.add(name: NotificationSignature.timestampHeader, value: String(timestamp))
        request.headers.add(name: NotificationSignature.signatureHeader, value: NotificationSignature.sign(body: Array(body.utf8), timestamp: timestamp, secret: secret))
        request.body = .bytes(ByteBuffer(string: body))
        let milliseconds = timeout.wholeMilliseconds
        let left = max(1, (timeout - (ContinuousClock.now - started)).wholeMilliseconds)
        do {
            let response = try await http.execute(request, timeout: .milliseconds(left))
            // The answer is read (to reuse the connection) but not kept: only its status counts.
            _ = try? await response.body.collect(upTo: 64 << 10)
            guard (200..<300).contains(response.status.code) else { return .failed("HTTP \(response.status.code)") }
            return .acknowledged
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return .failed("no answer within \(milliseconds) ms")
        } catch {
            return .failed(String(describing: error).prefix(200).description)
        }
    }

    /// The addresses `host` resolves to (a literal address is itself), off the caller's executor.
    static func resolve(_ host: String, on threads: NIOThreadPool) async -> Result<[[UInt8]], FailureReason> {
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        do {
            return try await threads.runIfActive {
                var hints = addrinfo()
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var list: UnsafeMutablePointer<addrinfo>?
                let status = getaddrinfo(name, nil, &hints, &list)
                guard status == 0, let first = list else {
                    return .failure(FailureReason("\(name) does not resolve: \(String(cString: gai_strerror(status)))"))
                }
                defer { freeaddrinfo(first) }
                var addresses: [[UInt8]] = []
                var next: UnsafeMutablePointer<addrinfo>? = first
                while let entry = next {
                    if let address = entry.pointee.ai_addr {
                        switch Int32(address.pointee.sa_family) {
                        case AF_INET:
                            address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { ipv4 in
                                withUnsafeBytes(of: ipv4.pointee.sin_addr) { addresses.append(Array($0)) }
                            }
                        case AF_INET6:
                            address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { ipv6 in
                                withUnsafeBytes(of: ipv6.pointee.sin6_addr) { addresses.append(Array($0)) }
                            }
                        default: break
                        }
                    }
                    next = entry.pointee.ai_next
                }
                return addresses.isEmpty ? .failure(FailureReason("\(name) resolves to no address")) : .success(addresses)
            }
        } catch {
            return .failure(FailureReason("\(name) could not be resolved: \(error)"))
        }
    }

    static func text(_ address: [UInt8]) -> String {
        if address.count == 4 { return address.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: address.count, by: 2).map { String(UInt16(address[$0]) << 8 | UInt16(address[$0 + 1]), radix: 16) }.joined(separator: ":")
    }

    struct FailureReason: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}

/// The resolutions of hosts under way and their recent answers.
final class Resolutions: Sendable {
    typealias Answer = Result<[[UInt8]], NotificationSender.FailureReason>
    private enum Entry {
        case resolving(Task<Answer, Never>)
        case resolved(Answer, at: ContinuousClock.Instant)
    }
    private let entries = Mutex<[String: Entry]>([:])
    /// How long an answer is used again.
    static let reuse = Duration.seconds(30)

    /// `host`'s addresses: the answer of a resolution under way or of a recent one, or a new resolution's.
    func resolve(_ host: String, _ lookup: @escaping @Sendable () async -> Answer) async -> Answer {
        let task = entries.withLock { entries -> Task<Answer, Never>? in
            switch entries[host] {
            case .resolving(let task): return task
            case .resolved(_, let at) where ContinuousClock.now - at < Self.reuse: return nil
            default:
                // Unstructured: a caller that gives up (its attempt's time is out) leaves it running for the next.
                let task = Task {
                    let answer = await lookup()
                    self.entries.withLock { $0[host] = .resolved(answer, at: .now) }
                    return answer
                }
                entries[host] = .resolving(task)
                if entries.count > 10_000 { entries = entries.filter { if case .resolving = $0.value { return true } else { return false } } }
                return task
            }
        }
        if let task { return await task.value }
        if case .resolved(let answer, _) = entries.withLock({ $0[host] }) { return answer }
        return await lookup()
    }
}
