import Foundation
import NIOCore
import OrderHTTP
import OrderModel
import Testing

@Suite("Signed request headers and checks")
struct SignedRequestHeaderTests {
    static let keyID = "ock_0123456789abcdef01234567"
    static let signature = Data(repeating: 7, count: 32).base64EncodedString()

    @Test func theFourFieldsInAnyOrderWithSpacesAfterTheCommas() throws {
        let header = try SignedRequestHeader(
            parsing: #"ORDERCELL-HMAC-SHA256 nonce="abcdefghijklmnop", signature="\#(Self.signature)",key_id="\#(Self.keyID)",  timestamp="1765000000""#
        )
        #expect(header.keyID == Self.keyID && header.timestamp == 1_765_000_000 && header.nonce == "abcdefghijklmnop")
        #expect(header.signature == Data(repeating: 7, count: 32))
    }

    /// Each a well-formed header but for one thing (a valid signature everywhere, so no case hides behind another).
    @Test(arguments: [
        #"Bearer abc"#,
        #"ORDERCELL-HMAC-SHA256 key_id="ock_0123456789abcdef01234567""#,
        #"ORDERCELL-HMAC-SHA256 key_id=ock_0123456789abcdef01234567,timestamp="1",nonce="abcdefghijklmnop",signature="SIG""#,
        #"ORDERCELL-HMAC-SHA256 key_id="ock_0123456789abcdef01234567",key_id="ock_0123456789abcdef01234567",nonce="abcdefghijklmnop",signature="SIG""#,
        #"ORDERCELL-HMAC-SHA256 key_id="ock_0123456789abcdef01234567",timestamp="1",nonce="short",signature="SIG""#,
        #"ORDERCELL-HMAC-SHA256 key_id="ock_0123456789abcdef01234567",timestamp="soon",nonce="abcdefghijklmnop",signature="SIG""#,
        #"ORDERCELL-HMAC-SHA256 key_id="ock_0123456789abcdef01234567",timestamp="1",nonce="abcdefghijklmnop",signature="AAAA""#,
        #"ORDERCELL-HMAC-SHA256 key_id="ock_0123456789abcdef01234567",timestamp="1",nonce="abcdefghijklmnop",signature="SIG";x"#,
        #"ORDERCELL-HMAC-SHA256 key_id="ock_0123456789abcdef01234567",timestamp="1",nonce="abcdefghijklmnop",signature="SIG"#,
        #"ORDERCELL-HMAC-SHA256 key_id="ock_0123456789abcdef01234567",timestamp="1",nonce="abcdefghijklmnop",extra="1",signature="SIG""#,
    ])
    func aMalformedHeaderIsUnauthorized(_ header: String) {
        let header = header.replacingOccurrences(of: "SIG", with: "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=")
        #expect(throws: OrderError.self) { try SignedRequestHeader(parsing: header) }
        do { _ = try SignedRequestHeader(parsing: header) } catch { #expect(error.code == .unauthorized) }
    }

    @Test func theSameHeaderWithAValidSignatureParses() throws {
        _ = try SignedRequestHeader(
            parsing: #"ORDERCELL-HMAC-SHA256 key_id="ock_0123456789abcdef01234567",timestamp="1",nonce="abcdefghijklmnop",signature="BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=""#
        )
    }

    @Test func theBodyHashIsLowercaseHexOfSHA256() {
        // SHA-256 of "abc" (FIPS 180-2).
        #expect(RequestSignature.bodySHA256(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(RequestSignature.bodySHA256([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func aRequestSignedByTheSchemeIsTakenOnceAndItsCallerNamed() throws {
        let sealer = try CredentialSealer(keyText: CredentialSealer.newKeyText())
        let (id, secret) = CredentialSealer.newKey()
        let now = Timestamp(secondsSinceEpoch: 1_765_000_000)
        let key = AccessKey(id: id, role: .paymentService, merchantID: nil, sealedSecret: try sealer.seal(secret, keyID: id), createdAt: now)
        let authenticator = RequestAuthenticator(sealer: sealer, keys: { [id: key] })
        let body = #"{"payment_id":"p-1","amount":1000}"#
        let header = RequestSignature.authorize(
            method: "POST", path: "/v1/orders/1/pay", query: "", body: Array(body.utf8), keyID: id, secret: secret, timestamp: now.secondsSinceEpoch,
            nonce: "abcdefghijklmnopqrstuvwx"
        )
        let caller = try authenticator.authenticate(
            method: "POST", path: "/v1/orders/1/pay", query: "", authorization: header, body: ByteBuffer(string: body), source: nil, now: now
        )
        #expect(caller == .paymentService)
        #expect(throws: OrderError(.nonceReplayed, "nonce abcdefghijklmnopqrstuvwx was used with key \(id) within the last 300 s")) {
            try authenticator.authenticate(method: "POST", path: "/v1/orders/1/pay", query: "", authorization: header, body: ByteBuffer(string: body), source: nil, now: now)
        }
        // A secret sealed under another credential key does not open: no caller, whatever the signature.
        let other = try CredentialSealer(keyText: CredentialSealer.newKeyText())
        #expect(throws: OrderError.self) { try other.open(key.sealedSecret, keyID: id) }
        #expect(throws: OrderError.self) { try sealer.open(key.sealedSecret, keyID: "ock_" + String(repeating: "f", count: 24)) }
    }
}
