/// One credential in `status` output. Holds no secret: the token appears only as its fingerprint, errors are
/// `CredentialError` descriptions.
public struct CredentialStatus: Sendable, Equatable, CustomStringConvertible {
    public struct RefreshCounts: Sendable, Equatable, CustomStringConvertible {
        /// Refreshes that produced a token.
        public var succeeded: UInt64 = 0
        /// Transient failures (unreachable, 5xx, timeout, command failure, ...).
        public var failed: UInt64 = 0
        /// Grant refusals by the endpoint (invalid_grant, 400, 401).
        public var rejected: UInt64 = 0

        public init() {}

        public var description: String { "succeeded \(succeeded), failed \(failed), rejected \(rejected)" }
    }

    public var name: String
    /// `static`, `file`, `command`, `oauth2`, `http_json`.
    public var type: String
    /// `valid`, `expired`, `not yet obtained`, `stale`, `rejected`, `refreshing`, `backing off until <time>`,
    /// `token rejected, backing off until <time>`, `failed: <reason>` (e.g. `failed: invalid_grant`).
    public var state: String
    public var tokenFingerprint: String?
    public var generation: UInt64?
    public var expiresAt: WallClockTime?
    /// The last successful refresh.
    public var lastRefresh: WallClockTime?
    /// When the next retry is due while backing off or failed.
    public var nextRetry: WallClockTime?
    public var refreshes: RefreshCounts
    public var lastError: String?

    public init(
        name: String, type: String, state: String, tokenFingerprint: String? = nil, generation: UInt64? = nil,
        expiresAt: WallClockTime? = nil, lastRefresh: WallClockTime? = nil, nextRetry: WallClockTime? = nil,
        refreshes: RefreshCounts = .init(), lastError: String? = nil
    ) {
        self.name = name
        self.type = type
        self.state = state
        self.tokenFingerprint = tokenFingerprint
        self.generation = generation
        self.expiresAt = expiresAt
        self.lastRefresh = lastRefresh
        self.nextRetry = nextRetry
        self.refreshes = refreshes
        self.lastError = lastError
    }

    public var description: String {
        var parts = ["\(name) (\(type)): \(state)"]
        if let tokenFingerprint { parts.append("token \(tokenFingerprint) gen \(generation ?? 0)") }
        if let expiresAt { parts.append("expires \(expiresAt.rfc3339)") }
        if let lastRefresh { parts.append("refreshed \(lastRefresh.rfc3339)") }
        parts.append("refreshes: \(refreshes)")
        if let lastError { parts.append("last error: \(lastError)") }
        return parts.joined(separator: "; ")
    }
}
