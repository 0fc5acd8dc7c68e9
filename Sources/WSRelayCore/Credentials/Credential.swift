import Logging
import NIOConcurrencyHelpers

/// One `[auth.NAME]`, shared by every upstream that names it: hands out a valid token per connection attempt
/// and refreshes it with exactly one refresh in flight, however many upstreams ask at once.
///
/// The decisions are `CredentialRefreshStateMachine`'s; this class is the shell around it: a lock, the
/// continuations of the waiting callers, the one refresh task, and the retry timer. Nothing is ever cached
/// outside the machine: every attempt asks `token(rejected:)` and gets the current value, never one captured
/// earlier.
public final class Credential: Sendable {
    typealias RefreshReason = CredentialRefreshStateMachine.RefreshReason
    private typealias Waiter = CheckedContinuation<Result<IssuedToken, CredentialError>, Never>

    public let name: String
    public let settings: AuthSettings
    let provider: any TokenProvider
    private let logger: Logger
    private let clock: @Sendable () -> WallClockTime
    private let box: NIOLockedValueBox<Inner>
    /// Refresh outcome counters (`RelayMetrics.credential(named:)`); no-ops when metrics are off.
    private let metrics: CredentialMetrics

    private struct Inner {
        var machine: CredentialRefreshStateMachine
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiterID: UInt64 = 0
        var refreshTask: Task<Void, Never>?
        var timerTask: Task<Void, Never>?
        var timerID: UInt64 = 0
        var rng = SystemRandomNumberGenerator()
        var isShutDown = false
    }

    /// Where the token goes on each attempt.
    public var placement: TokenPlacement { settings.placement }
    /// `static`, `file`, `command`, `oauth2` or `http_json`.
    public var type: String { provider.type }

    init(
        settings: AuthSettings, provider: any TokenProvider, logger: Logger,
        clock: @escaping @Sendable () -> WallClockTime = { .now() },
        metrics: CredentialMetrics = .disabled
    ) {
        self.metrics = metrics
        self.name = settings.name
        self.settings = settings
        self.provider = provider
        self.logger = logger
        self.clock = clock
        self.box = NIOLockedValueBox(
            Inner(machine: CredentialRefreshStateMachine(name: settings.name, policy: .init(settings)))
        )
    }

    /// A valid token for a connection attempt. `rejected`: the generation the previous attempt used and the
    /// server refused (401 / close 4001): if the current token is still that generation, exactly one refresh
    /// runs and every caller waits for it; if a newer token already exists (another upstream refreshed), it
    /// is returned at once with no new refresh.
    ///
    /// A token within `refreshSkew` of its expiry is refreshed before it is returned. While the credential
    /// backs off after failed refreshes, the call fails at once (the error's `retryAt` says when the next
    /// attempt is) unless the current token is still unexpired and was not the one rejected.
    public func token(rejected: UInt64? = nil) async throws(CredentialError) -> IssuedToken {
        checkSources()
        return try await obtain { machine, now in machine.tokenRequested(rejected: rejected, now: now) }
    }

    /// Refreshes now, bypassing any backoff (control socket `refresh-credential`); joins a refresh already
    /// running rather than starting a second one.
    public func forceRefresh() async throws(CredentialError) -> IssuedToken {
        checkSources()
        return try await obtain { machine, now in machine.forceRefreshRequested(now: now) }
    }

    /// SIGHUP: a failed or backing-off credential retries at once.
    public func resumeFailed() {
        let started = box.withLockedValue { inner -> RefreshReason? in
            guard !inner.isShutDown, let reason = inner.machine.resume(now: clock()) else { return nil }
            startRefreshLocked(&inner, reason)
            return reason
        }
        if started != nil { logger.info("credential resumed: retrying now") }
    }

    public func status() -> CredentialStatus {
        box.withLockedValue { inner in
            let machine = inner.machine
            return CredentialStatus(
                name: name, type: provider.type, state: machine.stateDescription(now: clock()),
                tokenFingerprint: machine.current?.fingerprint, generation: machine.current?.generation,
                expiresAt: machine.current?.expiresAt, lastRefresh: machine.lastSuccessAt, nextRetry: machine.nextRetry,
                refreshes: machine.counts, lastError: machine.lastError?.description
            )
        }
    }

    /// Callers currently waiting for a refresh (tests).
    var waiterCount: Int { box.withLockedValue { $0.waiters.count } }

    /// When the credential will hand out a successor of `token` (its refresh time), if `token` is still the
    /// current one; used to time a connection's make-before-break rotation.
    func renewTime(for token: IssuedToken) -> WallClockTime? {
        box.withLockedValue { inner in
            inner.machine.current?.generation == token.generation ? inner.machine.refreshAt : nil
        }
    }

    /// Fails every waiter with `.shutdown`, stops the timer and the running refresh, closes the provider.
    func shutdown() async {
        let (waiters, refresh, timer) = box.withLockedValue { inner -> ([Waiter], Task<Void, Never>?, Task<Void, Never>?) in
            inner.isShutDown = true
            let waiters = Array(inner.waiters.values)
            inner.waiters.removeAll()
            defer {
                inner.refreshTask = nil
                inner.timerTask = nil
            }
            return (waiters, inner.refreshTask, inner.timerTask)
        }
        let error = CredentialError(.shutdown, credential: name, "credential store is shut down")
        for waiter in waiters { waiter.resume(returning: .failure(error)) }
        timer?.cancel()
        refresh?.cancel()
        await provider.shutdown()
    }

    // MARK: - Shell

    private func obtain(
        _ decide: (inout CredentialRefreshStateMachine, WallClockTime) -> CredentialRefreshStateMachine.TokenRequestAction
    ) async throws(CredentialError) -> IssuedToken {
        let id = box.withLockedValue { inner -> UInt64 in
            inner.nextWaiterID += 1
            return inner.nextWaiterID
        }
        let name = self.name
        let result: Result<IssuedToken, CredentialError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: Waiter) in
                let (immediate, started) = box.withLockedValue {
                    inner -> (Result<IssuedToken, CredentialError>?, RefreshReason?) in
                    if inner.isShutDown {
                        return (.failure(CredentialError(.shutdown, credential: name, "credential store is shut down")), nil)
                    }
                    if Task.isCancelled {
                        return (.failure(CredentialError(.cancelled, credential: name, "token request cancelled")), nil)
                    }
                    switch decide(&inner.machine, clock()) {
                    case .returnToken(let token):
                        return (.success(token), nil)
                    case .fail(let error):
                        return (.failure(error), nil)
                    case .waitForRefresh:
                        inner.waiters[id] = continuation
                        return (nil, nil)
                    case .startRefresh(let reason):
                        inner.waiters[id] = continuation
                        startRefreshLocked(&inner, reason)
                        return (nil, reason)
                    }
                }
                if let immediate { continuation.resume(returning: immediate) }
                if let started { logger.debug("refreshing credential", metadata: ["reason": "\(started)"]) }
            }
        } onCancel: {
            let waiter = box.withLockedValue { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: .failure(CredentialError(.cancelled, credential: name, "token request cancelled")))
        }
        return try result.get()
    }

    /// Asks the provider whether a watched file changed; a change marks the token stale (token files) or
    /// resumes a failed credential (refresh-token / client-secret files).
    private func checkSources() {
        guard let change = provider.sourceChanged() else { return }
        let started = box.withLockedValue { inner -> RefreshReason? in
            guard !inner.isShutDown, let reason = inner.machine.sourceChanged(change, now: clock()) else { return nil }
            startRefreshLocked(&inner, reason)
            return reason
        }
        logger.info(
            change == .token ? "token source changed" : "refresh token or client secret changed",
            metadata: started == nil ? [:] : ["action": "retrying now"]
        )
    }

    private func startRefreshLocked(_ inner: inout Inner, _ reason: RefreshReason) {
        inner.refreshTask = Task { await self.runRefresh(reason) }
    }

    private enum Outcome {
        case succeeded(CredentialRefreshStateMachine.RefreshSucceeded, [Waiter])
        case failed(CredentialRefreshStateMachine.RefreshFailed, [Waiter])
        case discarded
    }

    private func runRefresh(_ reason: RefreshReason) async {
        let result: Result<TokenGrant, CredentialError>
        do {
            result = .success(try await provider.fetch())
        } catch {
            result = .failure(error)
        }
        let outcome = box.withLockedValue { inner -> Outcome in
            inner.refreshTask = nil
            guard !inner.isShutDown else { return .discarded }
            let now = clock()
            // Every registered waiter is waiting for this refresh: waiters only register while one runs.
            let waiters = Array(inner.waiters.values)
            inner.waiters.removeAll()
            switch result {
            case .success(let grant):
                inner.timerTask?.cancel()
                inner.timerTask = nil
                return .succeeded(inner.machine.refreshSucceeded(grant, now: now), waiters)
            case .failure(let error):
                let failed = inner.machine.refreshFailed(error, now: now, using: &inner.rng)
                scheduleTimerLocked(&inner, at: failed.retryAt, now: now)
                return .failed(failed, waiters)
            }
        }
        switch outcome {
        case .discarded:
            return
        case .succeeded(let success, let waiters):
            metrics.refreshed(.success)
            for waiter in waiters { waiter.resume(returning: .success(success.token)) }
            var metadata: Logger.Metadata = [
                "token": "\(success.token.fingerprint)", "generation": "\(success.token.generation)",
                "expires": "\(success.token.expiresAt?.rfc3339 ?? "unknown")", "reason": "\(reason)",
            ]
            if let episode = success.recoveredFrom {
                metadata["was"] = "\(episode.reason)"
                logger.notice("credential recovered", metadata: metadata)
            } else {
                if success.afterFailures > 0 { metadata["after_failures"] = "\(success.afterFailures)" }
                logger.info("credential refreshed", metadata: metadata)
            }
        case .failed(let failure, let waiters):
            metrics.refreshed(CredentialMetrics.outcome(of: failure.error))
            for waiter in waiters { waiter.resume(returning: .failure(failure.error)) }
            let metadata: Logger.Metadata = [
                "error": "\(failure.error.message)", "retry_at": "\(failure.retryAt.rfc3339)", "reason": "\(reason)",
            ]
            if failure.enteredFailed {
                logger.error(
                    "credential failed: the token endpoint refused the grant; retrying every \(settings.retryMax) (SIGHUP or a new refresh token retries at once)",
                    metadata: metadata
                )
            } else if failure.inFailedEpisode {
                logger.debug("credential still failing", metadata: metadata)
            } else {
                logger.warning("credential refresh failed", metadata: metadata)
            }
        }
    }

    private func scheduleTimerLocked(_ inner: inout Inner, at deadline: WallClockTime, now: WallClockTime) {
        inner.timerTask?.cancel()
        inner.timerID &+= 1
        let id = inner.timerID
        let delay = max(deadline.duration(since: now), .milliseconds(1))
        inner.timerTask = Task { [weak self] in
            do { try await Task.sleep(for: delay) } catch { return }
            self?.timerFired(id)
        }
    }

    private func timerFired(_ id: UInt64) {
        let started = box.withLockedValue { inner -> RefreshReason? in
            guard !inner.isShutDown, inner.timerID == id else { return nil }
            inner.timerTask = nil
            let now = clock()
            switch inner.machine.timerFired(now: now) {
            case .startRefresh(let reason):
                startRefreshLocked(&inner, reason)
                return reason
            case .scheduleRetry(let at):
                scheduleTimerLocked(&inner, at: at, now: now)
                return nil
            case .none:
                return nil
            }
        }
        if let started { logger.debug("refreshing credential", metadata: ["reason": "\(started)"]) }
    }
}
