import Crypto
import Foundation
import OrderModel

/// Seals access-key secrets under the deployment's **credential key** (32
/// bytes, AES-256-GCM), so that they are never stored or pushed in the
/// clear: the control plane seals a secret once, when it makes the key
/// (and shows it to the operator that one time); proxies open it to check
/// signatures. The key id is authenticated with the ciphertext, so a sealed
/// secret cannot be moved onto another key.
public struct CredentialSealer: Sendable {
    private let key: SymmetricKey

    /// From the credential key file's text: the base64 of 32 bytes.
    public init(keyText: String) throws(OrderError) {
        guard let data = Data(base64Encoded: keyText.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
            throw OrderError.invalidRequest("a credential key is the base64 of 32 random bytes (ordercell credential-key prints one)")
        }
        key = SymmetricKey(data: data)
    }

    /// A new credential key's text.
    public static func newKeyText() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
    }

    /// Seals `secret` for key `keyID`: base64 of nonce, ciphertext and tag.
    public func seal(_ secret: String, keyID: String) throws(OrderError) -> String {
        do {
            let box = try AES.GCM.seal(Data(secret.utf8), using: key, authenticating: Data(keyID.utf8))
            guard let combined = box.combined else { throw OrderError(.internalError, "AES-GCM gave no combined box") }
            return combined.base64EncodedString()
        } catch let error as OrderError {
            throw error
        } catch {
            throw OrderError(.internalError, "cannot seal the secret of access key \(keyID): \(error)")
        }
    }

    /// Opens the sealed secret of key `keyID`; fails when it was sealed under another credential key.
    public func open(_ sealed: String, keyID: String) throws(OrderError) -> String {
        guard let data = Data(base64Encoded: sealed), let box = try? AES.GCM.SealedBox(combined: data),
            let opened = try? AES.GCM.open(box, using: key, authenticating: Data(keyID.utf8))
        else {
            throw OrderError(.internalError, "the secret of access key \(keyID) does not open with this credential key")
        }
        return String(decoding: opened, as: UTF8.self)
    }

    /// A new key id and secret: `ock_` + 24 hex digits, `ocs_` + 43 base64url characters (256 random bits).
    public static func newKey() -> (id: String, secret: String) {
        var generator = SystemRandomNumberGenerator()
        let id = "ock_" + (0..<12).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        let secret = "ocs_" + RequestSignature.base64URL((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
        return (id, secret)
    }
}

extension CredentialSealer {
    /// The credential key in `path`, made there (mode 0600) if the file does not exist.
    public static func loadOrCreate(keyFile path: String) throws -> CredentialSealer {
        if !FileManager.default.fileExists(atPath: path) {
            let created = FileManager.default.createFile(
                atPath: path, contents: Data((newKeyText() + "\n").utf8), attributes: [.posixPermissions: 0o600]
            )
            guard created else { throw OrderError(.internalError, "cannot write the credential key file \(path)") }
        }
        return try load(keyFile: path)
    }

    /// The credential key in `path` (the base64 of 32 bytes).
    public static func load(keyFile path: String) throws -> CredentialSealer {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw OrderError.invalidRequest("cannot read the credential key file \(path)")
        }
        return try CredentialSealer(keyText: String(decoding: data, as: UTF8.self))
    }
}
