import Foundation
import Logging
import NIOCore
import Testing

@testable import CellProtocol

private let logger = Logger(label: "cell-protocol-tls-test")

/// A throwaway CA, a server certificate for 127.0.0.1 and a client
/// certificate signed by it, and a client certificate of another CA, made
/// with openssl in a temporary directory.
struct TestCertificates {
    let directory: String
    var caFile: String { directory + "/ca.pem" }
    var serverCertificate: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server.key" }
    var clientCertificate: String { directory + "/client.pem" }
    var clientKey: String { directory + "/client.key" }
    var namelessCertificate: String { directory + "/nameless.pem" }
    var namelessKey: String { directory + "/nameless.key" }
    var strangerCertificate: String { directory + "/stranger.pem" }
    var strangerKey: String { directory + "/stranger.key" }

    /// Made once for the whole suite, without holding a concurrency thread
    /// while openssl runs (the tests run in parallel on two cores).
    static let shared = Task { try await make() }

    private static func make() async throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd '\(directory)'
            key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
            ca() { key "$1.key"; openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$1" \
              -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign; }
            leaf() { key "$1.key"; openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1"
              printf 'subjectAltName=%s\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=%s\\n' "$3" "$4" > "$1.ext"
              openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" -days 2 -extfile "$1.ext" 2>/dev/null; }
            ca ca; ca other-ca
            leaf server ca IP:127.0.0.1,DNS:localhost serverAuth
            leaf client ca DNS:proxy-1,URI:spiffe://ordercell/proxy/proxy-1 clientAuth
            leaf nameless ca DNS:proxy-2 clientAuth
            leaf stranger other-ca DNS:proxy-9 clientAuth
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        guard status == 0 else { throw CellProtocolError.tlsFailed("openssl could not make the test certificates") }
        return TestCertificates(directory: directory)
    }
}

private func echo() -> ByteBuffer {
    var payload = ByteBuffer()
    payload.writeInteger(UInt8(0))
    payload.writeInteger(UInt32(42))
    return payload
}

/// A debug build's TLS handshake on a loaded two-core machine can take
/// longer than the production handshake limit; these tests are about which
/// error a handshake ends in, not how fast it is.
private let slowMachine: Duration = .seconds(20)

@Suite("Cell protocol over TLS")
struct TLSTests {
    @Test("with TLS and mutual TLS a call is answered; the server's certificate is checked against the endpoint's address")
    func mutualTLS() async throws {
        let files = try await TestCertificates.shared.value
        let server = try await CellProtocolServer.bind(
            host: "127.0.0.1", port: 0, responder: EchoResponder(),
            tls: .required(certificateFile: files.serverCertificate, privateKeyFile: files.serverKey, clientCAFile: files.caFile), logger: logger
        )
        let client = CellProtocolConnection(
            host: "127.0.0.1", port: server.port,
            tls: try .required(trustRootsFile: files.caFile, certificateFile: files.clientCertificate, privateKeyFile: files.clientKey),
            handshakeLimit: slowMachine
        )
        #expect(try await client.call(method: 1, payload: echo(), timeout: slowMachine) == echo())
        client.shutdown()
        await server.shutdown()
    }

    @Test("the responder learns who calls from the client's certificate: its spiffe://ordercell/ identity, or none")
    func callerIdentity() async throws {
        let files = try await TestCertificates.shared.value
        let server = try await CellProtocolServer.bind(
            host: "127.0.0.1", port: 0, responder: EchoResponder(),
            tls: .required(certificateFile: files.serverCertificate, privateKeyFile: files.serverKey, clientCAFile: files.caFile), logger: logger
        )
        func caller(certificate: String, key: String) async throws -> String {
            let client = CellProtocolConnection(
                host: "127.0.0.1", port: server.port,
                tls: try .required(trustRootsFile: files.caFile, certificateFile: certificate, privateKeyFile: key), handshakeLimit: slowMachine
            )
            defer { client.shutdown() }
            return String(buffer: try await client.call(method: 5, payload: ByteBuffer(), timeout: slowMachine))
        }
        #expect(try await caller(certificate: files.clientCertificate, key: files.clientKey) == "proxy/proxy-1")
        #expect(try await caller(certificate: files.namelessCertificate, key: files.namelessKey).hasPrefix("unidentified"))
        await server.shutdown()

        let plaintext = try await CellProtocolServer.bind(host: "127.0.0.1", port: 0, responder: EchoResponder(), tls: .disabled, logger: logger)
        let client = CellProtocolConnection(host: "127.0.0.1", port: plaintext.port, tls: .disabled)
        #expect(String(buffer: try await client.call(method: 5, payload: ByteBuffer(), timeout: slowMachine)) == "anonymous")
        client.shutdown()
        await plaintext.shutdown()
    }

    @Test("a client requiring TLS against a plaintext server fails with a TLS error, and does not fall back")
    func tlsClientPlaintextServer() async throws {
        let files = try await TestCertificates.shared.value
        let responder = EchoResponder()
        let server = try await CellProtocolServer.bind(host: "127.0.0.1", port: 0, responder: responder, tls: .disabled, logger: logger)
        let client = CellProtocolConnection(host: "127.0.0.1", port: server.port, tls: try .required(trustRootsFile: files.caFile), handshakeLimit: slowMachine)
        await #expect {
            try await client.call(method: 4, payload: ByteBuffer(), timeout: slowMachine)
        } throws: { error in
            guard case .tlsFailed = error as? CellProtocolError else { return false }
            return true
        }
        #expect(responder.fourthStarted.most == 0)
        client.shutdown()
        await server.shutdown()
    }

    @Test("a plaintext client against a TLS server is refused before any call runs")
    func plaintextClientTLSServer() async throws {
        let files = try await TestCertificates.shared.value
        let responder = EchoResponder()
        let server = try await CellProtocolServer.bind(
            host: "127.0.0.1", port: 0, responder: responder,
            tls: .required(certificateFile: files.serverCertificate, privateKeyFile: files.serverKey, clientCAFile: files.caFile), logger: logger
        )
        let client = CellProtocolConnection(host: "127.0.0.1", port: server.port, tls: .disabled, handshakeLimit: slowMachine)
        await #expect {
            try await client.call(method: 4, payload: ByteBuffer(), timeout: slowMachine)
        } throws: { error in
            guard let error = error as? CellProtocolError, case .badHello = error else { return false }
            return error.description.contains("requires TLS")
        }
        #expect(responder.fourthStarted.most == 0)
        client.shutdown()
        await server.shutdown()
    }

    @Test("mutual TLS refuses a client certificate of another CA, and a client without one")
    func wrongClientCertificate() async throws {
        let files = try await TestCertificates.shared.value
        let responder = EchoResponder()
        let server = try await CellProtocolServer.bind(
            host: "127.0.0.1", port: 0, responder: responder,
            tls: .required(certificateFile: files.serverCertificate, privateKeyFile: files.serverKey, clientCAFile: files.caFile), logger: logger
        )
        let stranger = CellProtocolConnection(
            host: "127.0.0.1", port: server.port,
            tls: try .required(trustRootsFile: files.caFile, certificateFile: files.strangerCertificate, privateKeyFile: files.strangerKey),
            handshakeLimit: slowMachine
        )
        let anonymous = CellProtocolConnection(host: "127.0.0.1", port: server.port, tls: try .required(trustRootsFile: files.caFile), handshakeLimit: slowMachine)
        for client in [stranger, anonymous] {
            await #expect {
                try await client.call(method: 4, payload: ByteBuffer(), timeout: slowMachine)
            } throws: { error in
                guard case .tlsFailed = error as? CellProtocolError else { return false }
                return true
            }
            client.shutdown()
        }
        #expect(responder.fourthStarted.most == 0, "no call of a refused client ran")
        await server.shutdown()
    }

    @Test("a client refuses a server whose certificate is not signed by the CAs it trusts")
    func untrustedServer() async throws {
        let files = try await TestCertificates.shared.value
        let server = try await CellProtocolServer.bind(
            host: "127.0.0.1", port: 0, responder: EchoResponder(),
            tls: .required(certificateFile: files.strangerCertificate, privateKeyFile: files.strangerKey, clientCAFile: files.caFile), logger: logger
        )
        let client = CellProtocolConnection(host: "127.0.0.1", port: server.port, tls: try .required(trustRootsFile: files.caFile), handshakeLimit: slowMachine)
        await #expect {
            try await client.call(method: 1, payload: echo(), timeout: slowMachine)
        } throws: { error in
            guard case .tlsFailed = error as? CellProtocolError else { return false }
            return true
        }
        client.shutdown()
        await server.shutdown()
    }
}
