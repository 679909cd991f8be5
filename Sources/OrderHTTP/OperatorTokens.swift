import Hummingbird
import OrderModel

/// What an operator token may do: viewers read, operators also change.
public enum OperatorRole: String, Sendable, Codable, CaseIterable {
    case viewer
    case `operator`

    /// Whether this role may do what `needed` may.
    public func allows(_ needed: OperatorRole) -> Bool { self == .operator || needed == .viewer }
}

/// One bearer token of the operator endpoints; its name is recorded as the
/// author of every change made with it.
public struct OperatorToken: Sendable, Equatable {
    public var name: String
    public var role: OperatorRole
    public var secret: String

    public init(name: String, role: OperatorRole, secret: String) {
        self.name = name
        self.role = role
        self.secret = secret
    }

    /// Parses `name:role:secret` (e.g. `alice:operator:s3cret`).
    public init(parsing text: String) throws(OrderError) {
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, !parts[2].isEmpty, let role = OperatorRole(rawValue: parts[1]) else {
            throw OrderError.invalidRequest("an operator token is name:role:secret with role viewer or operator")
        }
        // The name is recorded as the author of changes and relayed to cells with drill faults, which take these names only.
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-".utf8)
        guard (1...64).contains(parts[0].utf8.count), parts[0].utf8.allSatisfy(allowed.contains) else {
            throw OrderError.invalidRequest("an operator token's name is 1-64 of a-z A-Z 0-9 . _ @ -, got '\(parts[0].prefix(64))'")
        }
        self.init(name: parts[0], role: role, secret: parts[2])
    }
}

/// The operator tokens a server accepts, and the check every operator
/// endpoint makes: 401 without a valid token, 403 when its role is too low.
public struct OperatorTokens: Sendable {
    public var tokens: [OperatorToken]

    public init(_ tokens: [OperatorToken]) { self.tokens = tokens }

    /// The tokens `ordercell dev` and its walkthrough use by default: anyone may know them, so the cluster's
    /// servers refuse them unless told otherwise (docs/security.md).
    public static let developmentSecrets: Set<String> = ["dev-admin-token"]

    /// Refuses a well-known development token (a cluster's servers do, unless told to allow them).
    public func refusingDevelopmentTokens() throws(OrderError) {
        if let known = tokens.first(where: { Self.developmentSecrets.contains($0.secret) }) {
            throw OrderError.invalidRequest(
                "token '\(known.name)' is ordercell dev's well-known token, which anyone may know: give a secret of your own (--token-file), or --allow-dev-tokens on a loopback cluster for trying things"
            )
        }
    }

    /// One operator token named `admin` (nil: operator endpoints disabled), plus viewer tokens.
    public init(adminToken: String?, viewerToken: String? = nil) {
        var tokens: [OperatorToken] = []
        if let adminToken { tokens.append(OperatorToken(name: "admin", role: .operator, secret: adminToken)) }
        if let viewerToken { tokens.append(OperatorToken(name: "viewer", role: .viewer, secret: viewerToken)) }
        self.tokens = tokens
    }

    /// A request without a token, or with one that is not valid: a failure
    /// the failed-authentication limit counts (``OperatorAuthenticationLimit``),
    /// answered as its `401`.
    public struct Refused: Error {
        public let error: OrderError
    }

    /// The token of `request`, if it may act as `role`.
    ///
    /// - Throws: ``Refused`` without a valid token; `OrderError` (`403`)
    ///   for a token whose role is too low, or when no token is configured.
    @discardableResult
    public func authorize(_ request: Request, as role: OperatorRole) throws -> OperatorToken {
        guard !tokens.isEmpty else { throw OrderError(.unauthorized, "operator endpoints are disabled: no admin token is configured") }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw Refused(error: OrderError(.unauthorized, "operator endpoints need 'Authorization: Bearer <token>'"))
        }
        let presented = Array(header.utf8.dropFirst(7))
        // Every token is compared, without an early exit, so timing reveals nothing.
        var match: OperatorToken?
        for token in tokens where Self.constantTimeEqual(presented, Array(token.secret.utf8)) { match = token }
        guard let token = match else { throw Refused(error: OrderError(.unauthorized, "the token is not valid")) }
        guard token.role.allows(role) else {
            throw OrderError(.forbidden, "token '\(token.name)' has role \(token.role.rawValue); this needs \(role.rawValue)")
        }
        return token
    }

    /// Compares without an early exit, so timing does not reveal a matching prefix.
    public static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: lhs.count ^ rhs.count)
        for index in 0..<max(lhs.count, rhs.count) {
            difference |= (index < lhs.count ? lhs[index] : 0) ^ (index < rhs.count ? rhs[index] : 0)
        }
        return difference == 0 && lhs.count == rhs.count
    }
}
