/// Why a credential could not hand out a token.
///
/// The message never contains a secret: not the access token, not the refresh token, not a client secret,
/// and not the token endpoint's response body (only its HTTP status and OAuth `error` code, plus
/// `error_description` when it is short and cannot be one of the secrets).
public struct CredentialError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// A secret source (file, environment variable, systemd credential) could not be read.
        case sourceUnavailable = "source_unavailable"
        /// The settings cannot work as given (bad URL, TLS files that do not load, ...).
        case misconfigured
        /// The token endpoint could not be reached (connection refused, DNS, TLS, reset).
        case endpointUnreachable = "endpoint_unreachable"
        /// The token endpoint answered with a non-2xx status other than 400/401.
        case endpointError = "endpoint_error"
        /// The endpoint refused the grant: OAuth `invalid_grant`, or HTTP 400/401. Puts the credential into
        /// the `failed` state (slow retries) until the refresh token changes or SIGHUP.
        case grantRejected = "grant_rejected"
        /// A response, file or command output came back but held no usable token.
        case invalidResponse = "invalid_response"
        /// The token command could not be started or exited unsuccessfully.
        case commandFailed = "command_failed"
        /// A command or HTTP call did not finish within the configured timeout.
        case timedOut = "timed_out"
        /// The server keeps refusing freshly obtained tokens; the next refresh waits (see `retryAt`).
        case tokenRejected = "token_rejected"
        /// The waiting task was cancelled.
        case cancelled
        /// The credential store has been shut down.
        case shutdown
    }

    public var kind: Kind
    /// The `[auth.NAME]` this error belongs to.
    public var credential: String
    /// Human-readable, secret-free detail.
    public var message: String
    /// The token endpoint's HTTP status, when there was one.
    public var httpStatus: Int?
    /// The OAuth `error` field of the endpoint's answer (e.g. `invalid_grant`).
    public var oauthError: String?
    /// When this credential will next try to obtain a token; set on errors returned while backing off.
    public var retryAt: WallClockTime?

    public init(
        _ kind: Kind, credential: String, _ message: String, httpStatus: Int? = nil, oauthError: String? = nil,
        retryAt: WallClockTime? = nil
    ) {
        self.kind = kind
        self.credential = credential
        self.message = message
        self.httpStatus = httpStatus
        self.oauthError = oauthError
        self.retryAt = retryAt
    }

    /// Errors that put the credential into the `failed` state rather than ordinary backoff.
    public var isPermanent: Bool { kind == .grantRejected }

    /// Short form for status output: `invalid_grant`, `HTTP 401`, `timed_out`, ...
    public var reason: String {
        if let oauthError { return oauthError }
        if let httpStatus { return "HTTP \(httpStatus)" }
        return kind.rawValue
    }

    public var description: String {
        var text = "credential \"\(credential)\": \(message)"
        if let retryAt { text += " (next attempt at \(retryAt.rfc3339))" }
        return text
    }

    func retrying(at time: WallClockTime?) -> CredentialError {
        var copy = self
        copy.retryAt = time
        return copy
    }
}
