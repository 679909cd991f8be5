import Foundation
import NIOCore
import OrderModel
import Testing

@testable import OrderHTTP

@Suite("Limits on authentication: nonces per key, failures per source and per key")
struct AuthenticationLimitsTests {
    @Test("a nonce is refused again within the window and forgotten with its bucket; one key cannot hold more than its quota")
    func nonceCache() {
        var cache = NonceCache(windowSeconds: 300, capacity: 10, perKeyCapacity: 4)
        let now: Int64 = 1_800_000_000
        #expect(cache.insert(keyID: "a", nonce: "n-1", timestamp: now, now: now) == .fresh)
        #expect(cache.insert(keyID: "a", nonce: "n-1", timestamp: now, now: now + 10) == .replayed)
        // The same nonce under another key is another request.
        #expect(cache.insert(keyID: "b", nonce: "n-1", timestamp: now, now: now) == .fresh)
        for index in 2...4 { #expect(cache.insert(keyID: "a", nonce: "n-\(index)", timestamp: now, now: now) == .fresh) }
        // Key a holds its quota: its next nonce is refused, key b's are not.
        #expect(cache.insert(keyID: "a", nonce: "n-5", timestamp: now, now: now) == .keyFull)
        #expect(cache.count(of: "a") == 4 && cache.count(of: "b") == 1)
        for index in 2...6 { #expect(cache.insert(keyID: "b", nonce: "n-\(index)", timestamp: now, now: now) == (index <= 4 ? .fresh : .keyFull)) }
        for index in 1...2 { #expect(cache.insert(keyID: "c\(index)", nonce: "n", timestamp: now, now: now) == .fresh) }
        // Ten held in all: the cache is full for everyone.
        #expect(cache.count == 10)
        #expect(cache.insert(keyID: "d", nonce: "n", timestamp: now, now: now) == .full)
        // Once the window has passed the bucket, its nonces and quotas are gone.
        let later = now + 300 + 120
        #expect(cache.insert(keyID: "a", nonce: "n-1", timestamp: later, now: later) == .fresh)
        #expect(cache.count == 1 && cache.count(of: "a") == 1 && cache.count(of: "b") == 0)
    }

    @Test("failures empty a source's bucket, which refills with time; another source is not touched")
    func failuresPerSource() {
        var limiter = AuthenticationFailureLimiter(burst: 3, refillPerSecond: 0.5, maximumTracked: 100)
        let attacker = AuthenticationFailureLimiter.Source.ipv4(0x0A00_0001)
        let other = AuthenticationFailureLimiter.Source.ipv4(0x0A00_0002)
        // Three failures answered as they are, then over the limit, with when the next one will be.
        let verdicts = (0..<5).map { _ in limiter.recordFailure(source: attacker, keyID: nil, now: 100).retryAfter }
        #expect(verdicts == [nil, nil, nil, 2, 2])
        #expect(limiter.recordFailure(source: other, keyID: nil, now: 100).retryAfter == nil)
        // Waiting the Retry-After gives one failure back; four seconds two.
        #expect(limiter.recordFailure(source: attacker, keyID: nil, now: 102).retryAfter == nil)
        #expect(limiter.recordFailure(source: attacker, keyID: nil, now: 102).retryAfter == 2)
        #expect(limiter.recordFailure(source: attacker, keyID: nil, now: 106).retryAfter == nil)
        #expect(limiter.recordFailure(source: attacker, keyID: nil, now: 106).retryAfter == nil)
        #expect(limiter.recordFailure(source: attacker, keyID: nil, now: 106).retryAfter == 2)
    }

    @Test("failures under one key go over its limit once, whatever their sources")
    func failuresPerKey() {
        var limiter = AuthenticationFailureLimiter(burst: 3, refillPerSecond: 0.5, maximumTracked: 100)
        let verdicts = (1...5).map { limiter.recordFailure(source: .ipv4(UInt32($0)), keyID: "ock_x", now: 50) }
        #expect(verdicts.map(\.keyWentOver) == [false, false, false, true, false])
        #expect(verdicts.map { $0.retryAfter != nil } == [false, false, false, true, true])
        #expect(limiter.recordFailure(source: .ipv4(9), keyID: "ock_y", now: 50).retryAfter == nil)
        #expect(limiter.recordFailure(source: .ipv4(9), keyID: "ock_x", now: 60).retryAfter == nil)
    }

    @Test("an IPv6 source is counted by its /64, an IPv4 client of a dual-stack listener by its IPv4 address; at the tracking limit a new source is not tracked")
    func sources() throws {
        let first = AuthenticationFailureLimiter.Source(try SocketAddress(ipAddress: "2001:db8:1:2::1", port: 1))
        let second = AuthenticationFailureLimiter.Source(try SocketAddress(ipAddress: "2001:db8:1:2:ffff::9", port: 2))
        let elsewhere = AuthenticationFailureLimiter.Source(try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 1))
        #expect(first == second && first != elsewhere)
        #expect(AuthenticationFailureLimiter.Source(try SocketAddress(ipAddress: "10.0.0.1", port: 1)) == .ipv4(0x0A00_0001))
        #expect(AuthenticationFailureLimiter.Source(try SocketAddress(ipAddress: "::ffff:10.0.0.1", port: 1)) == .ipv4(0x0A00_0001))
        #expect(AuthenticationFailureLimiter.Source(try SocketAddress(ipAddress: "::ffff:10.0.0.2", port: 1)) == .ipv4(0x0A00_0002))

        var limiter = AuthenticationFailureLimiter(burst: 1, refillPerSecond: 0.01, maximumTracked: 2)
        for source in 1...2 { #expect(limiter.recordFailure(source: .ipv4(UInt32(source)), keyID: nil, now: 0).retryAfter == nil) }
        #expect(limiter.recordFailure(source: .ipv4(1), keyID: nil, now: 0).retryAfter != nil)
        // A third source finds no room: not tracked, so never over the limit.
        for _ in 1...3 { #expect(limiter.recordFailure(source: .ipv4(3), keyID: nil, now: 0).retryAfter == nil) }
    }

    @Test("past the limits failures are answered 429, per source and per key, and a request signed with the secret is always served")
    func authenticator() throws {
        let sealer = try CredentialSealer(keyText: CredentialSealer.newKeyText())
        let now = Timestamp(secondsSinceEpoch: 1_800_000_000)
        let revokedID = "ock_" + String(repeating: "a", count: 24)
        let activeID = "ock_" + String(repeating: "b", count: 24)
        let secret = "ocs_" + String(repeating: "S", count: 43)
        let wrong = "ocs_" + String(repeating: "W", count: 43)
        let keys = [
            revokedID: AccessKey(
                id: revokedID, role: .merchant, merchantID: "m1", sealedSecret: try sealer.seal(secret, keyID: revokedID), createdAt: now, revokedAt: now
            ),
            activeID: AccessKey(id: activeID, role: .merchant, merchantID: "m2", sealedSecret: try sealer.seal(secret, keyID: activeID), createdAt: now),
        ]
        let authenticator = RequestAuthenticator(sealer: sealer, keys: { keys })
        var nonce = 0
        func code(_ keyID: String, _ secret: String, from address: String) -> OrderErrorCode? {
            nonce += 1
            let header = RequestSignature.authorize(
                method: "POST", path: "/v1/orders", query: "", body: Array("{}".utf8), keyID: keyID, secret: secret,
                timestamp: now.secondsSinceEpoch, nonce: String(format: "nonce-%018d", nonce)
            )
            do {
                _ = try authenticator.authenticate(
                    method: "POST", path: "/v1/orders", query: "", authorization: header, body: ByteBuffer(string: "{}"),
                    source: try? SocketAddress(ipAddress: address, port: 1), now: now
                )
                return nil
            } catch {
                return error.code
            }
        }
        // A revoked key says so only to a caller whose signature is right.
        #expect(code(revokedID, wrong, from: "10.0.0.1") == .signatureMismatch)
        #expect(code(revokedID, secret, from: "10.0.0.2") == .keyRevoked)

        // Failures from one address (the default burst is 20): the twentieth on are answered 429, and a
        // request signed with the secret from that address (behind the same balancer, say) is served.
        let unknownID = "ock_" + String(repeating: "c", count: 24)
        let fromOne = (1...22).map { _ in code(unknownID, secret, from: "10.0.0.9") }
        #expect(fromOne.prefix(20).allSatisfy { $0 == .unknownKey } && fromOne.suffix(2).allSatisfy { $0 == .rateLimited })
        #expect(code(activeID, secret, from: "10.0.0.9") == nil)
        // Failures of a caller who holds the secret (a stale timestamp, a revoked key) are not counted: its answers stay precise.
        for _ in 1...25 { #expect(code(revokedID, secret, from: "10.3.0.1") == .keyRevoked) }

        // Twenty failures under one key from twenty addresses: its failures are answered 429 from then on,
        // and the holder of its secret is still served.
        let answers = (1...21).map { code(activeID, wrong, from: "10.1.0.\($0)") }
        #expect(answers.dropLast().allSatisfy { $0 == .signatureMismatch } && answers.last == .rateLimited)
        #expect(code(activeID, secret, from: "10.2.0.1") == nil)
        #expect(code(activeID, wrong, from: "10.2.0.2") == .rateLimited)
    }
}

@Suite("Signing's own base64")
struct SigningBase64Tests {
    @Test("base64 and base64url of every length agree with Foundation's")
    func agreesWithFoundation() {
        var generator = SystemRandomNumberGenerator()
        for length in 0...70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let foundation = Data(bytes).base64EncodedString()
            #expect(RequestSignature.base64(bytes, alphabet: RequestSignature.standardAlphabet, padded: true) == foundation)
            let url = foundation.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(RequestSignature.base64URL(bytes) == url)
        }
    }
}
