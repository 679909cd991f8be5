import Foundation
import OrderModel

/// Which URLs a merchant may register to be notified at: http or https,
/// a host, no credentials in the URL, and — unless an operator allows it
/// for a deployment (a test receiver on loopback, say) — no address of
/// this machine or of a private network, so that a merchant cannot make
/// OrderCell call into the platform's own network (SSRF).
///
/// A name is checked again when a notification is sent, against every
/// address it resolves to (``allows(address:)``): a name that resolves to
/// a private address is refused then, whatever it resolved to at
/// registration (DNS rebinding).
public struct NotifyURLPolicy: Sendable, Equatable {
    /// Allows loopback, link-local and private addresses (tests, closed deployments).
    public var allowPrivateNetworks: Bool

    public init(allowPrivateNetworks: Bool = false) {
        self.allowPrivateNetworks = allowPrivateNetworks
    }

    /// A URL's parts as the notifier uses them.
    public struct Target: Sendable, Equatable {
        public var secure: Bool
        public var host: String
        public var port: Int
        public var path: String

        public init(secure: Bool, host: String, port: Int, path: String) {
            self.secure = secure
            self.host = host
            self.port = port
            self.path = path
        }
    }

    /// Parses and checks `text`; the refusal says what is wrong.
    public func check(_ text: String) throws(OrderError) -> Target {
        guard text.utf8.count <= 2048 else { throw OrderError.invalidRequest("notify_url is longer than 2048 bytes") }
        let lowered = text.lowercased()
        let secure: Bool
        let rest: Substring
        if lowered.hasPrefix("https://") {
            secure = true
            rest = text.dropFirst(8)
        } else if lowered.hasPrefix("http://") {
            secure = false
            rest = text.dropFirst(7)
        } else {
            throw OrderError.invalidRequest("notify_url must be an http:// or https:// URL")
        }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let path = rest.dropFirst(authority.count)
        guard !authority.isEmpty else { throw OrderError.invalidRequest("notify_url has no host") }
        guard !authority.contains("@") else { throw OrderError.invalidRequest("notify_url must not carry credentials") }
        guard !path.contains("#"), path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw OrderError.invalidRequest("notify_url's path must be printable ASCII without a fragment")
        }
        var host = String(authority)
        var port = secure ? 443 : 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw OrderError.invalidRequest("notify_url has an unclosed IPv6 address") }
            let after = host[host.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let number = Int(after.dropFirst()), (1...65535).contains(number) else {
                    throw OrderError.invalidRequest("notify_url's port must be 1...65535")
                }
                port = number
            }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let number = Int(host[host.index(after: colon)...]), (1...65535).contains(number) else {
                throw OrderError.invalidRequest("notify_url's port must be 1...65535")
            }
            port = number
            host = String(host[..<colon])
        }
        host = host.lowercased()
        let bracketed = authority.hasPrefix("[")
        if bracketed {
            guard host.contains(":"), Self.address(host) != nil else {
                throw OrderError.invalidRequest("notify_url's [address] is not an IPv6 address (\(host.prefix(64)))")
            }
        } else {
            // One trailing dot names the same host ("localhost." is localhost).
            if host.hasSuffix(".") { host.removeLast() }
            let labels = host.split(separator: ".", omittingEmptySubsequences: false)
            guard !host.isEmpty, host.utf8.count <= 253,
                labels.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 && $0.utf8.allSatisfy { Self.nameBytes.contains($0) } })
            else {
                throw OrderError.invalidRequest("notify_url's host must be a DNS name (letters, digits, '-', '.') or an IP address")
            }
            // Resolvers read 2130706433, 0x7f.1, 127.1 and 0177.0.0.1 as addresses: only a plain dotted quad is one here.
            let last = labels.last!
            if last.allSatisfy(\.isNumber) || last.hasPrefix("0x") {
                guard labels.count == 4, labels.allSatisfy({ $0 == "0" || ($0.first != "0" && UInt8($0) != nil) }) else {
                    throw OrderError.invalidRequest("notify_url's IPv4 address must be four decimal numbers 0...255 without leading zeros")
                }
            }
        }
        if !allowPrivateNetworks {
            if host == "localhost" || host.hasSuffix(".localhost") || host.hasSuffix(".local") || host.hasSuffix(".internal") {
                throw OrderError.invalidRequest("notify_url must not name this machine or an internal host (\(host))")
            }
            if let address = Self.address(host), !allows(address: address) {
                throw OrderError.invalidRequest("notify_url must not be a loopback, link-local or private address (\(host))")
            }
        }
        return Target(secure: secure, host: host, port: port, path: path.isEmpty ? "/" : String(path))
    }

    /// An address a name resolved to, as bytes (4 for IPv4, 16 for IPv6).
    public func allows(address bytes: [UInt8]) -> Bool {
        if allowPrivateNetworks { return true }
        return !Self.isInternal(bytes)
    }

    /// The bytes a DNS name may hold.
    static let nameBytes = Set("abcdefghijklmnopqrstuvwxyz0123456789-".utf8)

    /// Whether `bytes` is an address no merchant endpoint should have: unspecified, loopback, private
    /// (RFC 1918, shared 100.64/10), IETF and benchmarking ranges, link-local, multicast and reserved; in
    /// IPv6 also unique-local, site-local, and every form that carries an IPv4 address (mapped,
    /// compatible, NAT64, 6to4), judged by that address; Teredo, whose IPv4 address is hidden, always.
    static func isInternal(_ bytes: [UInt8]) -> Bool {
        switch bytes.count {
        case 4:
            let (a, b, c) = (bytes[0], bytes[1], bytes[2])
            return a == 0 || a == 10 || a == 127 || (a == 100 && (64...127).contains(b)) || (a == 169 && b == 254)
                || (a == 172 && (16...31).contains(b)) || (a == 192 && b == 168) || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19)) || a >= 224
        case 16:
            let zeros = { (range: Range<Int>) in bytes[range].allSatisfy { $0 == 0 } }
            if zeros(0..<16) { return true }  // ::
            if zeros(0..<15) && bytes[15] == 1 { return true }  // ::1
            if zeros(0..<10) && bytes[10] == 0xff && bytes[11] == 0xff { return isInternal(Array(bytes[12...])) }  // ::ffff:a.b.c.d
            if zeros(0..<12) { return isInternal(Array(bytes[12...])) }  // ::a.b.c.d (IPv4-compatible)
            if bytes[0] == 0x00, bytes[1] == 0x64, bytes[2] == 0xff, bytes[3] == 0x9b {
                return zeros(4..<12) ? isInternal(Array(bytes[12...])) : true  // NAT64 64:ff9b::/96; 64:ff9b:1::/48 local
            }
            if bytes[0] == 0x20, bytes[1] == 0x02 { return isInternal(Array(bytes[2..<6])) }  // 6to4 2002::/16
            if bytes[0] == 0x20, bytes[1] == 0x01, bytes[2] == 0x00, bytes[3] == 0x00 { return true }  // Teredo 2001::/32
            return bytes[0] & 0xfe == 0xfc || (bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80) || (bytes[0] == 0xfe && bytes[1] & 0xc0 == 0xc0)
                || bytes[0] == 0xff
        default:
            return true
        }
    }

    /// The bytes of `host` when it is an IP address literal.
    static func address(_ host: String) -> [UInt8]? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4, let bytes = Optional(parts.compactMap { UInt8($0) }), bytes.count == 4 { return bytes }
        guard host.contains(":") else { return nil }
        // IPv6: up to 8 groups, one "::".
        let halves: [String]
        if let range = host.range(of: "::") {
            halves = [String(host[..<range.lowerBound]), String(host[range.upperBound...])]
            guard !halves[1].contains("::") else { return nil }
        } else {
            halves = [host]
        }
        func groups(_ text: String) -> [UInt16]? {
            if text.isEmpty { return [] }
            var parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            var embedded: [UInt16] = []
            // An IPv4 address in the last two groups (::ffff:127.0.0.1).
            if let last = parts.last, last.contains(".") {
                guard let v4 = address(last), v4.count == 4 else { return nil }
                embedded = [UInt16(v4[0]) << 8 | UInt16(v4[1]), UInt16(v4[2]) << 8 | UInt16(v4[3])]
                parts.removeLast()
            }
            let values = parts.map { $0.utf8.count <= 4 ? UInt16($0, radix: 16) : nil }
            return values.contains(nil) ? nil : values.map { $0! } + embedded
        }
        guard let head = groups(halves[0]), let tail = halves.count == 2 ? groups(halves[1]) : [UInt16]() else { return nil }
        let missing = 8 - head.count - tail.count
        guard halves.count == 2 ? missing >= 1 : missing == 0 else { return nil }
        let all = head + [UInt16](repeating: 0, count: halves.count == 2 ? missing : 0) + tail
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }
}
