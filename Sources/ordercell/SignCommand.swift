import ArgumentParser
import Foundation
import OrderHTTP
import OrderModel

/// `ordercell sign`: the `Authorization` header of a signed request to the
/// public API (docs/security.md), for curl and scripts:
///
/// ```
/// curl -X POST "$BASE/v1/orders" -d "$BODY" -H "authorization: $(ordercell sign POST /v1/orders "$BODY")"
/// ```
///
/// The key comes from `$ORDERCELL_KEY_ID` and the secret from
/// `$ORDERCELL_SECRET` or `--secret-file`, never from the command line.
struct SignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign", abstract: "Print the Authorization header that signs a request to the public API (docs/security.md)."
    )

    @Argument(help: "The method: GET or POST.") var method: String
    @Argument(help: "The path, with its query if any, exactly as the request sends it: /v1/orders?merchant_id=m1&out_trade_no=demo-1.")
    var target: String
    @Argument(help: "The body, exactly as sent (none for GET).") var body: String = ""
    @Option(help: "The access key id (default: $ORDERCELL_KEY_ID).") var keyID = ProcessInfo.processInfo.environment["ORDERCELL_KEY_ID"]
    @Option(help: "A file holding the secret (default: $ORDERCELL_SECRET).") var secretFile: String?

    func run() throws {
        guard let keyID, AccessKey.isValidID(keyID) else { throw ValidationError("give the key id with --key-id or $ORDERCELL_KEY_ID (ock_…)") }
        let secret: String
        if let secretFile {
            guard let data = FileManager.default.contents(atPath: secretFile) else { throw ValidationError("cannot read \(secretFile)") }
            secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let fromEnvironment = ProcessInfo.processInfo.environment["ORDERCELL_SECRET"] {
            secret = fromEnvironment
        } else {
            throw ValidationError("give the secret in $ORDERCELL_SECRET or a file named by --secret-file")
        }
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        print(
            RequestSignature.authorize(
                method: method.uppercased(), path: String(parts[0]), query: parts.count > 1 ? String(parts[1]) : "", body: Data(body.utf8),
                keyID: keyID, secret: secret, timestamp: Int64(Date().timeIntervalSince1970), nonce: RequestSignature.newNonce()
            )
        )
    }
}
