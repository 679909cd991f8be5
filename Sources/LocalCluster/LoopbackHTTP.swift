import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.0 client for the local cluster's own servers on loopback
/// (Patroni's REST API, etcd's `/health`): one request per connection, the
/// answer read to its end, a deadline on every step. Foundation's URLSession
/// is not dependable on Linux here, and this module has no other HTTP client.
public enum LoopbackHTTP {
    public struct Response: Sendable {
        public var status: Int
        public var body: Data
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Sends one request to `127.0.0.1:port` and returns the answer, or nil
    /// when nothing answered in time (refused, closed, timed out, not HTTP).
    public static func send(
        _ method: String = "GET", port: Int, path: String, body: Data? = nil, timeout: Duration = .seconds(3)
    ) async -> Response? {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: sendBlocking(method, port: port, path: path, body: body, timeout: timeout))
            }
        }
    }

    /// `send`, blocking the calling thread (for one-shot command-line tools).
    public static func sendBlocking(
        _ method: String = "GET", port: Int, path: String, body: Data? = nil, timeout: Duration = .seconds(3)
    ) -> Response? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let seconds = timeout.components.seconds
        var interval = timeval(tv_sec: Int(seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        if seconds == 0 && interval.tv_usec == 0 { interval.tv_usec = 1000 }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }

        var request = "\(method) \(path) HTTP/1.0\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if let body { request += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        request += "\r\n"
        var outgoing = Data(request.utf8)
        if let body { outgoing.append(body) }
        let written = outgoing.withUnsafeBytes { buffer -> Bool in
            var offset = 0
            while offset < buffer.count {
                let count = Glibc.send(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                if count <= 0 { return false }
                offset += count
            }
            return true
        }
        guard written else { return nil }

        var incoming = Data()
        var chunk = [UInt8](repeating: 0, count: 16384)
        var expectedLength: Int?
        var headerEnd: Int?
        while ContinuousClock.now < deadline {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count <= 0 { break }
            incoming.append(contentsOf: chunk[0..<count])
            if headerEnd == nil, let range = incoming.range(of: Data("\r\n\r\n".utf8)) {
                headerEnd = range.upperBound
                let header = String(decoding: incoming[..<range.lowerBound], as: UTF8.self).lowercased()
                for line in header.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                    expectedLength = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
                }
            }
            if let headerEnd, let expectedLength, incoming.count - headerEnd >= expectedLength { break }
        }
        guard let headerEnd else { return nil }
        let statusLine = String(decoding: incoming[..<headerEnd], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else { return nil }
        var body = Data(incoming[headerEnd...])
        if let expectedLength, body.count > expectedLength { body = body.prefix(expectedLength) }
        return Response(status: status, body: body)
    }
}
