/// Gives an upstream a fresh credential for each connection attempt. Implemented by the credentials layer;
/// the driver only knows that an attempt needs one and that a rejection names the generation it used.
public protocol AttemptCredentialSource: Sendable {
    /// A token for the next attempt. `rejected`: the generation of the token the previous attempt used and
    /// the server refused; the source refreshes only if nothing newer exists.
    func credential(rejected: UInt64?) async throws -> AttemptCredential
}

/// What one attempt carries: the request changes (header, query, subprotocol, cookie), or a message to send
/// first, plus the generation so a rejection can name exactly this token. Printing it shows the fingerprint
/// only: `authMessage` contains the token.
public struct AttemptCredential: Sendable, CustomStringConvertible, CustomReflectable {
    public var generation: UInt64
    public var fingerprint: String
    public var apply: @Sendable (inout HandshakeRequest) -> Void
    /// For `placement = "message"`: sent as the first message after the upgrade.
    public var authMessage: String?
    public var authOKPattern: String?
    public var authTimeout: Duration?
    /// When a connection made with this credential should be rotated (`reconnect_before_expiry`): the
    /// token's expiry minus the auth's `refresh_skew`; nil when the expiry is unknown.
    public var renewAt: WallClockTime?

    public init(generation: UInt64, fingerprint: String, apply: @escaping @Sendable (inout HandshakeRequest) -> Void,
                authMessage: String? = nil, authOKPattern: String? = nil, authTimeout: Duration? = nil,
                renewAt: WallClockTime? = nil) {
        self.renewAt = renewAt
        self.generation = generation
        self.fingerprint = fingerprint
        self.apply = apply
        self.authMessage = authMessage
        self.authOKPattern = authOKPattern
        self.authTimeout = authTimeout
    }

    public var description: String { "AttemptCredential(generation: \(generation), token: \(fingerprint))" }
    public var customMirror: Mirror { Mirror(self, children: ["generation": generation, "token": fingerprint]) }
}
