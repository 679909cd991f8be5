import Crypto
import Foundation
import OrderModel

/// How a caller of the public API signs a request (docs/security.md,
/// "Signed requests"): HMAC-SHA256, keyed by the access key's secret, over
///
/// ```
/// METHOD \n PATH \n QUERY \n TIMESTAMP \n NONCE \n hex(SHA-256(body)) \n
/// ```
///
/// — the path and the query exactly as sent (the query without its `?`,
/// empty when there is none), the timestamp in Unix seconds — sent as
///
/// ```
/// Authorization: ORDERCELL-HMAC-SHA256 key_id="ock_…",timestamp="1765000000",nonce="…",signature="<base64>"
/// ```
///
/// Everything that decides what a request does is signed, so nothing of it
/// can be altered; the timestamp and the nonce make a captured request
/// useless after the window or a second time.
public enum RequestSignature {
    /// The `Authorization` scheme.
    public static let scheme = "ORDERCELL-HMAC-SHA256"
    /// How far a request's timestamp may be from the server's clock, either way.
    public static let windowSeconds: Int64 = 300
    /// What a nonce may be: 16 to 64 of `A-Z a-z 0-9 _ -`.
    public static let nonceLength = 16...64

    /// The string a request's signature covers.
    public static func canonical(method: String, path: String, query: String, timestamp: Int64, nonce: String, bodySHA256: String) -> String {
        "\(method)\n\(path)\n\(query)\n\(timestamp)\n\(nonce)\n\(bodySHA256)\n"
    }

    /// SHA-256 of the body, lowercase hex (of no bytes for a request without a body).
    public static func bodySHA256<Bytes: DataProtocol>(_ body: Bytes) -> String {
        let digits: StaticString = "0123456789abcdef"
        return String(unsafeUninitializedCapacity: 2 * SHA256.byteCount) { output in
            var index = 0
            for byte in SHA256.hash(data: body) {
                output[index] = digits.utf8Start[Int(byte >> 4)]
                output[index + 1] = digits.utf8Start[Int(byte & 0x0f)]
                index += 2
            }
            return index
        }
    }

    /// The signature of `canonical` under `secret` (its UTF-8 bytes are the HMAC key), base64.
    public static func sign(_ canonical: String, secret: String) -> String {
        sign(canonical, key: signingKey(secret))
    }

    /// The HMAC key of `secret`: made once by a client that signs many requests with it.
    public static func signingKey(_ secret: String) -> SymmetricKey { SymmetricKey(data: Data(secret.utf8)) }

    /// The signature of `canonical` under a key made by ``signingKey(_:)``, base64.
    public static func sign(_ canonical: String, key: SymmetricKey) -> String {
        var canonical = canonical
        let code = canonical.withUTF8 { HMAC<SHA256>.authenticationCode(for: UnsafeRawBufferPointer($0), using: key) }
        return base64(Array(code), alphabet: standardAlphabet, padded: true)
    }

    /// The `Authorization` header of a request.
    public static func authorization(keyID: String, timestamp: Int64, nonce: String, signature: String) -> String {
        "\(scheme) key_id=\"\(keyID)\",timestamp=\"\(timestamp)\",nonce=\"\(nonce)\",signature=\"\(signature)\""
    }

    /// Signs a whole request: its `Authorization` header.
    public static func authorize(
        method: String, path: String, query: String, body: some DataProtocol, keyID: String, secret: String, timestamp: Int64, nonce: String
    ) -> String {
        authorize(method: method, path: path, query: query, body: body, keyID: keyID, key: signingKey(secret), timestamp: timestamp, nonce: nonce)
    }

    /// Signs a whole request with a key made by ``signingKey(_:)``.
    public static func authorize(
        method: String, path: String, query: String, body: some DataProtocol, keyID: String, key: SymmetricKey, timestamp: Int64, nonce: String
    ) -> String {
        let canonical = canonical(method: method, path: path, query: query, timestamp: timestamp, nonce: nonce, bodySHA256: bodySHA256(body))
        return authorization(keyID: keyID, timestamp: timestamp, nonce: nonce, signature: sign(canonical, key: key))
    }

    /// A fresh nonce: 24 random bytes, base64url (32 characters). Three draws of the system's generator, not
    /// twenty-four: a client signs every request.
    public static func newNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        for _ in 0..<3 { withUnsafeBytes(of: generator.next() as UInt64) { bytes.append(contentsOf: $0) } }
        return base64URL(bytes)
    }

    static func base64URL(_ bytes: [UInt8]) -> String { base64(bytes, alphabet: urlAlphabet, padded: false) }

    static let standardAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let urlAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Base64 of `bytes` in one pass into the string's storage: every client signs every request, and
    /// Foundation's encoder plus three replacements cost more than the HMAC.
    static func base64(_ bytes: [UInt8], alphabet: [UInt8], padded: Bool) -> String {
        let full = bytes.count / 3
        let rest = bytes.count % 3
        let length = full * 4 + (rest == 0 ? 0 : (padded ? 4 : rest + 1))
        return String(unsafeUninitializedCapacity: length) { output in
            var out = 0
            var index = 0
            while index + 3 <= bytes.count {
                let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
                for shift in [18, 12, 6, 0] {
                    output[out] = alphabet[Int(value >> UInt32(shift) & 0x3f)]
                    out += 1
                }
                index += 3
            }
            if rest > 0 {
                let value = UInt32(bytes[index]) << 16 | (rest == 2 ? UInt32(bytes[index + 1]) << 8 : 0)
                let symbols = rest + 1
                for (position, shift) in [18, 12, 6].enumerated() where position < symbols {
                    output[out] = alphabet[Int(value >> UInt32(shift) & 0x3f)]
                    out += 1
                }
                if padded {
                    for _ in symbols..<4 {
                        output[out] = UInt8(ascii: "=")
                        out += 1
                    }
                }
            }
            return out
        }
    }
}

/// The parts of a signed request's `Authorization` header.
public struct SignedRequestHeader: Sendable, Equatable {
    public var keyID: String
    public var timestamp: Int64
    public var nonce: String
    /// The presented signature, decoded.
    public var signature: Data

    /// Parses `ORDERCELL-HMAC-SHA256 key_id="…",timestamp="…",nonce="…",signature="…"` (any order of the four,
    /// spaces allowed after the commas). On every request's path: it reads the header's bytes once, without
    /// Foundation's string scanning.
    public init(parsing header: String) throws(OrderError) {
        let prefix = RequestSignature.scheme + " "
        guard header.hasPrefix(prefix) else {
            throw OrderError(.unauthorized, "the public API needs 'Authorization: \(RequestSignature.scheme) key_id=…,timestamp=…,nonce=…,signature=…' (docs/security.md)")
        }
        let malformed = OrderError(.unauthorized, "the Authorization header is malformed: each field is name=\"value\", once, separated by commas")
        var fields: [Substring: Substring] = [:]
        let text = header.utf8.dropFirst(prefix.utf8.count)
        var position = text.startIndex
        while position < text.endIndex {
            while position < text.endIndex, text[position] == UInt8(ascii: " ") { position = text.index(after: position) }
            guard let equals = text[position...].firstIndex(of: UInt8(ascii: "=")), text.index(after: equals) < text.endIndex,
                text[text.index(after: equals)] == UInt8(ascii: "\"")
            else { throw malformed }
            let valueStart = text.index(equals, offsetBy: 2)
            guard let quote = text[valueStart...].firstIndex(of: UInt8(ascii: "\"")) else { throw malformed }
            let name = Substring(text[position..<equals])
            guard fields.updateValue(Substring(text[valueStart..<quote]), forKey: name) == nil else { throw malformed }
            position = text.index(after: quote)
            if position < text.endIndex {
                guard text[position] == UInt8(ascii: ",") else { throw malformed }
                position = text.index(after: position)
            }
        }
        guard fields.count == 4, let keyID = fields["key_id"].map(String.init), let timestampText = fields["timestamp"],
            let nonce = fields["nonce"].map(String.init), let signatureText = fields["signature"]
        else {
            throw OrderError(.unauthorized, "the Authorization header names exactly key_id, timestamp, nonce and signature")
        }
        guard AccessKey.isValidID(keyID) else { throw OrderError(.unauthorized, "key_id is ock_ and 24 hex digits") }
        guard let timestamp = Int64(timestampText), timestampText.utf8.count <= 12 else {
            throw OrderError(.unauthorized, "timestamp is Unix seconds")
        }
        guard RequestSignature.nonceLength.contains(nonce.utf8.count),
            nonce.utf8.allSatisfy({ $0 == 0x2d || $0 == 0x5f || (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) })
        else {
            throw OrderError(.unauthorized, "nonce is 16 to 64 of A-Z a-z 0-9 _ -")
        }
        guard signatureText.utf8.count <= 64, let signature = Data(base64Encoded: String(signatureText)), signature.count == 32 else {
            throw OrderError(.unauthorized, "signature is the base64 of 32 bytes (HMAC-SHA256)")
        }
        self.keyID = keyID
        self.timestamp = timestamp
        self.nonce = nonce
        self.signature = signature
    }
}
