/// The decisions of one credential, free of I/O and of the clock: every event carries `now`, and the
/// randomness of the backoff jitter is passed in.
///
/// Phases:
/// - `idle`: no refresh running. A request gets the current token if there is one that is not stale, not
///   rejected, and not due for refresh; otherwise it starts a refresh.
/// - `refreshing`: exactly one refresh runs; every request waits for it (single flight).
/// - `backingOff(until:)`: the last refresh failed (or the server kept refusing fresh tokens). Requests fail
///   at once with the last error, unless the current token is still unexpired and the request did not reject
///   it. At `until` a timer retries (or the first request after it does).
/// - `failed`: the endpoint refused the grant (`invalid_grant`, 400, 401). Like `backingOff`, but retried only
///   every `retryMax`; `resume` (SIGHUP, a changed refresh-token file) retries at once.
///
/// Rejections: `tokenRequested(rejected: g)` means an attempt with generation `g` was refused by the server.
/// If `g` is the current token, it is marked rejected and one refresh runs; if a newer token exists, that is
/// returned with no refresh. If a token obtained *because of* a rejection is itself rejected, the next
/// refresh waits until `retryInitial · 2^(n-1)` (capped at `retryMax`) after that token was obtained, `n`
/// counting consecutive such rejections: a server that refuses every token is not answered with a refresh
/// storm. The streak resets after a refresh for any other reason, or when a rejected token had lived at
/// least `retryMax`.
///
/// Refresh timing: a token is refreshed before it is handed out once it is within `refreshSkew` of its
/// expiry — but with a short-lived token the effective skew is at most half its lifetime, so a token whose
/// whole lifetime is shorter than the skew is not refreshed on every request.
struct CredentialRefreshStateMachine: Sendable {
    struct Policy: Sendable, Equatable {
        var refreshSkew: Duration
        var retryInitial: Duration
        var retryMax: Duration

        init(refreshSkew: Duration = .seconds(60), retryInitial: Duration = .seconds(1), retryMax: Duration = .seconds(300)) {
            self.refreshSkew = refreshSkew
            self.retryInitial = retryInitial
            self.retryMax = max(retryMax, retryInitial)
        }

        init(_ settings: AuthSettings) {
            self.init(refreshSkew: settings.refreshSkew, retryInitial: settings.retryInitial, retryMax: settings.retryMax)
        }
    }

    enum RefreshReason: Sendable, Equatable, CustomStringConvertible {
        case initial
        case expiring
        case rejected(generation: UInt64)
        case sourceChanged
        case forced
        case retry
        case resumed

        var description: String {
            switch self {
            case .initial: return "first use"
            case .expiring: return "token expiring"
            case .rejected(let g): return "token generation \(g) rejected by the server"
            case .sourceChanged: return "token source changed"
            case .forced: return "refresh requested"
            case .retry: return "retry after failure"
            case .resumed: return "resumed"
            }
        }
    }

    enum Phase: Sendable, Equatable {
        case idle
        case refreshing(reason: RefreshReason, since: WallClockTime)
        case backingOff(until: WallClockTime, error: CredentialError)
        case failed(error: CredentialError, nextRetry: WallClockTime)
    }

    enum TokenRequestAction: Sendable, Equatable {
        case returnToken(IssuedToken)
        /// Start the (single) refresh, and wait for it like `waitForRefresh`.
        case startRefresh(RefreshReason)
        case waitForRefresh
        case fail(CredentialError)
    }

    /// After a successful refresh: return `token` to every waiter.
    struct RefreshSucceeded: Sendable, Equatable {
        var token: IssuedToken
        /// Set when this success ends a `failed` episode (log the recovery once): the error of the episode.
        var recoveredFrom: CredentialError?
        /// The refresh had been failing (transiently) before this success.
        var afterFailures: Int
    }

    /// After a failed refresh: fail every waiter with `error`, schedule a retry at `retryAt`.
    struct RefreshFailed: Sendable, Equatable {
        var error: CredentialError
        var retryAt: WallClockTime
        /// This failure started a `failed` episode (log it once, at error).
        var enteredFailed: Bool
        /// The credential is in a `failed` episode (log further failures quietly).
        var inFailedEpisode: Bool
    }

    enum TimerAction: Sendable, Equatable {
        case startRefresh(RefreshReason)
        case scheduleRetry(at: WallClockTime)
        case none
    }

    let policy: Policy
    /// The credential's name, for the errors the machine makes itself.
    let name: String
    private(set) var phase: Phase = .idle
    private(set) var current: IssuedToken?
    private(set) var currentObtainedAt: WallClockTime?
    private(set) var refreshAt: WallClockTime?
    private(set) var currentFromRejection = false
    private(set) var rejectedGeneration: UInt64?
    private(set) var stale = false
    private(set) var nextGeneration: UInt64 = 1
    private(set) var consecutiveFailures = 0
    private(set) var rejectionStreak = 0
    /// The error that began the current `failed` episode.
    private(set) var failedEpisode: CredentialError?
    private(set) var lastError: CredentialError?
    private(set) var lastSuccessAt: WallClockTime?
    private(set) var counts = CredentialStatus.RefreshCounts()

    init(name: String = "", policy: Policy) {
        self.name = name
        self.policy = policy
    }

    // MARK: - Events

    mutating func tokenRequested(rejected: UInt64?, now: WallClockTime) -> TokenRequestAction {
        if let rejected { noteRejection(of: rejected, now: now) }
        switch phase {
        case .refreshing:
            return .waitForRefresh
        case .idle:
            if let token = current, !stale, rejectedGeneration != token.generation, !isDue(now) {
                return .returnToken(token)
            }
            let reason: RefreshReason
            if current == nil {
                reason = .initial
            } else if stale {
                reason = .sourceChanged
            } else if let g = rejectedGeneration, g == current?.generation {
                reason = .rejected(generation: g)
            } else {
                reason = .expiring
            }
            return .startRefresh(begin(reason, now: now))
        case .backingOff(let until, let error), .failed(let error, let until):
            if now >= until { return .startRefresh(begin(retryReason(error), now: now)) }
            if let token = current, !stale, token.generation != rejected, !isExpired(token, now) {
                return .returnToken(token)
            }
            return .fail(error)
        }
    }

    /// `forceRefresh()` (control socket): refresh now, whatever the phase and backoff; join a running one.
    mutating func forceRefreshRequested(now: WallClockTime) -> TokenRequestAction {
        if case .refreshing = phase { return .waitForRefresh }
        return .startRefresh(begin(.forced, now: now))
    }

    mutating func refreshSucceeded(_ grant: TokenGrant, now: WallClockTime) -> RefreshSucceeded {
        let reason: RefreshReason
        if case .refreshing(let r, _) = phase { reason = r } else { reason = .forced }
        let token = IssuedToken(value: grant.accessToken, generation: nextGeneration, expiresAt: grant.expiresAt)
        nextGeneration += 1
        current = token
        currentObtainedAt = now
        refreshAt = Self.refreshTime(expiresAt: grant.expiresAt, obtainedAt: now, skew: policy.refreshSkew)
        stale = false
        rejectedGeneration = nil
        if case .rejected = reason {
            currentFromRejection = true
        } else {
            currentFromRejection = false
            rejectionStreak = 0
        }
        let failures = consecutiveFailures
        consecutiveFailures = 0
        lastSuccessAt = now
        counts.succeeded += 1
        let recovered = failedEpisode
        failedEpisode = nil
        phase = .idle
        return RefreshSucceeded(token: token, recoveredFrom: recovered, afterFailures: failures)
    }

    mutating func refreshFailed<G: RandomNumberGenerator>(
        _ error: CredentialError, now: WallClockTime, using generator: inout G
    ) -> RefreshFailed {
        consecutiveFailures += 1
        if error.isPermanent { counts.rejected += 1 } else { counts.failed += 1 }
        if error.isPermanent || failedEpisode != nil {
            // A failed episode lasts until a refresh succeeds; transient errors inside it keep the slow pace.
            let entered = failedEpisode == nil
            if entered { failedEpisode = error }
            let next = now.adding(policy.retryMax)
            let stamped = error.retrying(at: next)
            lastError = stamped
            phase = .failed(error: stamped, nextRetry: next)
            return RefreshFailed(error: stamped, retryAt: next, enteredFailed: entered, inFailedEpisode: true)
        }
        let delay = Self.failureDelay(policy: policy, failures: consecutiveFailures, using: &generator)
        let next = now.adding(delay)
        let stamped = error.retrying(at: next)
        lastError = stamped
        phase = .backingOff(until: next, error: stamped)
        return RefreshFailed(error: stamped, retryAt: next, enteredFailed: false, inFailedEpisode: false)
    }

    mutating func timerFired(now: WallClockTime) -> TimerAction {
        switch phase {
        case .backingOff(let until, let error), .failed(let error, let until):
            if now >= until { return .startRefresh(begin(retryReason(error), now: now)) }
            return .scheduleRetry(at: until)
        case .idle, .refreshing:
            return .none
        }
    }

    /// SIGHUP, or a changed refresh input: a backing-off or failed credential retries at once (and its
    /// backoff starts over). Returns the refresh to start, if any.
    mutating func resume(now: WallClockTime) -> RefreshReason? {
        switch phase {
        case .backingOff, .failed:
            consecutiveFailures = 0
            rejectionStreak = 0
            return begin(.resumed, now: now)
        case .idle, .refreshing:
            return nil
        }
    }

    /// A watched input changed. `.token`: the current token is stale (refreshed before it is handed out
    /// again). Either kind resumes a backing-off or failed credential.
    mutating func sourceChanged(_ change: SourceChange, now: WallClockTime) -> RefreshReason? {
        if change == .token, current != nil, !isRefreshing { stale = true }
        return resume(now: now)
    }

    // MARK: - Queries

    var isRefreshing: Bool {
        if case .refreshing = phase { return true }
        return false
    }

    /// The state for status output: `valid`, `expired`, `not yet obtained`, `refreshing`,
    /// `backing off until <time>`, `failed: <reason>`.
    func stateDescription(now: WallClockTime) -> String {
        switch phase {
        case .refreshing: return "refreshing"
        case .backingOff(let until, let error):
            return error.kind == .tokenRejected
                ? "token rejected, backing off until \(until.rfc3339)" : "backing off until \(until.rfc3339)"
        case .failed(let error, _): return "failed: \(failedEpisode?.reason ?? error.reason)"
        case .idle:
            guard let token = current else { return "not yet obtained" }
            if stale { return "stale" }
            if rejectedGeneration == token.generation { return "rejected" }
            if isExpired(token, now) { return "expired" }
            return "valid"
        }
    }

    var nextRetry: WallClockTime? {
        switch phase {
        case .backingOff(let until, _), .failed(_, let until): return until
        case .idle, .refreshing: return nil
        }
    }

    // MARK: - Rules

    private mutating func begin(_ reason: RefreshReason, now: WallClockTime) -> RefreshReason {
        phase = .refreshing(reason: reason, since: now)
        return reason
    }

    /// After a rejection hold the refresh still counts as rejection-triggered, so the streak keeps growing.
    private func retryReason(_ error: CredentialError) -> RefreshReason {
        if error.kind == .tokenRejected, let g = rejectedGeneration { return .rejected(generation: g) }
        return .retry
    }

    private func isDue(_ now: WallClockTime) -> Bool {
        guard let refreshAt else { return false }
        return now >= refreshAt
    }

    private func isExpired(_ token: IssuedToken, _ now: WallClockTime) -> Bool {
        guard let expiresAt = token.expiresAt else { return false }
        return now >= expiresAt
    }

    private mutating func noteRejection(of generation: UInt64, now: WallClockTime) {
        guard let token = current, token.generation == generation, rejectedGeneration != generation else { return }
        rejectedGeneration = generation
        guard case .idle = phase, let obtainedAt = currentObtainedAt else { return }
        let age = now.duration(since: obtainedAt)
        guard currentFromRejection, age < policy.retryMax else {
            rejectionStreak = 0
            return
        }
        rejectionStreak += 1
        let hold = obtainedAt.adding(Self.ceiling(policy: policy, attempt: rejectionStreak - 1))
        if now < hold {
            let error = CredentialError(
                .tokenRejected, credential: name,
                "the server rejected a freshly obtained token again; not refreshing before \(hold.rfc3339)",
                retryAt: hold
            )
            phase = .backingOff(until: hold, error: error)
        }
    }

    /// When to refresh a token: `expiresAt - min(skew, lifetime / 2)`; `nil` when the expiry is unknown.
    static func refreshTime(expiresAt: WallClockTime?, obtainedAt: WallClockTime, skew: Duration) -> WallClockTime? {
        guard let expiresAt else { return nil }
        let lifetime = expiresAt.duration(since: obtainedAt)
        guard lifetime > .zero else { return expiresAt }
        return expiresAt.adding(.zero - min(skew, lifetime / 2))
    }

    /// `min(retryMax, retryInitial · 2^attempt)`, reusing `ReconnectBackoff`'s growth (and its 100 ms floor).
    static func ceiling(policy: Policy, attempt: Int) -> Duration {
        ReconnectBackoff(initial: policy.retryInitial, maximum: policy.retryMax, multiplier: 2)
            .ceiling(forAttempt: attempt)
    }

    /// The delay after the `failures`-th consecutive failure: *equal jitter* over `ReconnectBackoff`'s
    /// ceiling, uniform in `[ceiling/2, ceiling]`. Unlike the reconnect backoff's full jitter it never drops
    /// near zero, so retries of one credential are spaced at least `retryInitial / 2` and grow with each
    /// failure; the jitter still spreads credentials that failed together.
    static func failureDelay<G: RandomNumberGenerator>(policy: Policy, failures: Int, using generator: inout G)
        -> Duration
    {
        let ceiling = Self.ceiling(policy: policy, attempt: max(0, failures - 1)).nonNegativeNanosecondsClamped
        let half = ceiling / 2
        return .nanoseconds(half + Int64.random(in: 0...(ceiling - half), using: &generator))
    }
}
