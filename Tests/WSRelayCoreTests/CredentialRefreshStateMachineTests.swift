import Testing
@testable import WSRelayCore

@Suite struct CredentialRefreshStateMachineTests {
    typealias Machine = CredentialRefreshStateMachine
    let t0 = WallClockTime(microsecondsSinceEpoch: 1_800_000_000_000_000)

    func machine(skew: Duration = .seconds(60), initial: Duration = .seconds(1), max: Duration = .seconds(8)) -> Machine {
        Machine(name: "api", policy: .init(refreshSkew: skew, retryInitial: initial, retryMax: max))
    }

    func grant(_ value: String, expiresAt: WallClockTime? = nil) -> TokenGrant {
        TokenGrant(accessToken: value, expiresAt: expiresAt)
    }

    func transient() -> CredentialError {
        CredentialError(.endpointUnreachable, credential: "api", "connection refused")
    }

    func invalidGrant() -> CredentialError {
        CredentialError(.grantRejected, credential: "api", "HTTP 400 (invalid_grant)", httpStatus: 400,
                        oauthError: "invalid_grant")
    }

    /// Brings a machine to holding token `value` (one refresh).
    func primed(_ m: inout Machine, _ value: String = "a", expiresAt: WallClockTime? = nil, at now: WallClockTime) -> IssuedToken {
        #expect(m.tokenRequested(rejected: nil, now: now) == .startRefresh(.initial))
        return m.refreshSucceeded(grant(value, expiresAt: expiresAt), now: now).token
    }

    @Test func oneRefreshForManyConcurrentRequests() {
        var m = machine()
        var actions: [Machine.TokenRequestAction] = []
        for _ in 0..<50 { actions.append(m.tokenRequested(rejected: nil, now: t0)) }
        #expect(actions.first == .startRefresh(.initial))
        #expect(actions.dropFirst().allSatisfy { $0 == .waitForRefresh })
        let done = m.refreshSucceeded(grant("a"), now: t0)
        #expect(done.token.generation == 1)
        #expect(done.token.value == "a")
        #expect(done.recoveredFrom == nil)
        for _ in 0..<10 { #expect(m.tokenRequested(rejected: nil, now: t0) == .returnToken(done.token)) }
    }

    @Test func rejectionOfCurrentGenerationRefreshesOnce() {
        var m = machine()
        let first = primed(&m, at: t0)
        let later = t0.adding(.seconds(600))
        #expect(m.tokenRequested(rejected: first.generation, now: later) == .startRefresh(.rejected(generation: 1)))
        // Nineteen more upstreams report the same rejection while the refresh runs: they wait.
        for _ in 0..<19 { #expect(m.tokenRequested(rejected: first.generation, now: later) == .waitForRefresh) }
        let second = m.refreshSucceeded(grant("b"), now: later).token
        #expect(second.generation == 2)
        // A late report about generation 1 gets generation 2 at once, no refresh.
        #expect(m.tokenRequested(rejected: 1, now: later.adding(.seconds(1))) == .returnToken(second))
        #expect(m.counts.succeeded == 2)
    }

    @Test func secondRejectionOfAFreshTokenWaits() {
        var m = machine(initial: .seconds(2), max: .seconds(60))
        _ = primed(&m, at: t0)
        var now = t0.adding(.seconds(600))
        #expect(m.tokenRequested(rejected: 1, now: now) == .startRefresh(.rejected(generation: 1)))
        let fresh = m.refreshSucceeded(grant("b"), now: now).token

        // The fresh token is rejected too, 200 ms later: no immediate second refresh.
        now = now.adding(.milliseconds(200))
        guard case .fail(let error) = m.tokenRequested(rejected: fresh.generation, now: now) else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.kind == .tokenRejected)
        #expect(error.retryAt == now.adding(.milliseconds(1800)))  // obtained + retryInitial
        // Another upstream, which has not had this token refused, still gets it meanwhile.
        #expect(m.tokenRequested(rejected: nil, now: now) == .returnToken(fresh))
        #expect(m.stateDescription(now: now).hasPrefix("token rejected, backing off until"))

        // Once the hold is over the rejection refreshes (still counted as rejection-triggered).
        now = error.retryAt!
        #expect(m.tokenRequested(rejected: fresh.generation, now: now) == .startRefresh(.rejected(generation: 2)))
        let third = m.refreshSucceeded(grant("c"), now: now).token
        // Rejected again at once: the hold doubles (2 s -> 4 s).
        guard case .fail(let again) = m.tokenRequested(rejected: third.generation, now: now) else {
            Issue.record("expected a failure")
            return
        }
        #expect(again.retryAt == now.adding(.seconds(4)))
    }

    @Test func rejectionOfALongLivedTokenRefreshesAtOnce() {
        var m = machine(initial: .seconds(1), max: .seconds(60))
        _ = primed(&m, at: t0)
        #expect(m.tokenRequested(rejected: 1, now: t0.adding(.seconds(5))) == .startRefresh(.rejected(generation: 1)))
        _ = m.refreshSucceeded(grant("b"), now: t0.adding(.seconds(5)))
        // Generation 2 came from a rejection but served for an hour before being refused: refresh at once.
        let later = t0.adding(.seconds(3605))
        #expect(m.tokenRequested(rejected: 2, now: later) == .startRefresh(.rejected(generation: 2)))
    }

    @Test func expiringTokenIsRefreshedBeforeItIsHandedOut() {
        var m = machine(skew: .seconds(60))
        let token = primed(&m, expiresAt: t0.adding(.seconds(3600)), at: t0)
        #expect(m.tokenRequested(rejected: nil, now: t0.adding(.seconds(3539))) == .returnToken(token))
        #expect(m.tokenRequested(rejected: nil, now: t0.adding(.seconds(3541))) == .startRefresh(.expiring))
    }

    @Test func shortLivedTokenUsesHalfItsLifetimeAsSkew() {
        var m = machine(skew: .seconds(60))
        let token = primed(&m, expiresAt: t0.adding(.seconds(30)), at: t0)
        #expect(m.refreshAt == t0.adding(.seconds(15)))
        #expect(m.tokenRequested(rejected: nil, now: t0.adding(.seconds(14))) == .returnToken(token))
        #expect(m.tokenRequested(rejected: nil, now: t0.adding(.seconds(15))) == .startRefresh(.expiring))
    }

    @Test func failureBackoffGrowsWithinBounds() {
        // Lowest draws: each delay is exactly half the ceiling; highest draws: the ceiling.
        for high in [false, true] {
            var m = machine(initial: .seconds(1), max: .seconds(8))
            var now = t0
            var delays: [Duration] = []
            #expect(m.tokenRequested(rejected: nil, now: now) == .startRefresh(.initial))
            for _ in 0..<6 {
                let failure: Machine.RefreshFailed
                if high {
                    var rng = CredentialMaxRandom()
                    failure = m.refreshFailed(transient(), now: now, using: &rng)
                } else {
                    var rng = CredentialZeroRandom()
                    failure = m.refreshFailed(transient(), now: now, using: &rng)
                }
                #expect(!failure.enteredFailed)
                #expect(failure.error.retryAt == failure.retryAt)
                delays.append(failure.retryAt.duration(since: now))
                // Before the retry time requests fail fast, with no refresh.
                #expect(m.tokenRequested(rejected: nil, now: failure.retryAt.adding(.milliseconds(-1))) == .fail(failure.error))
                #expect(m.timerFired(now: failure.retryAt.adding(.milliseconds(-1))) == .scheduleRetry(at: failure.retryAt))
                now = failure.retryAt
                #expect(m.timerFired(now: now) == .startRefresh(.retry))
            }
            let expected: [Duration] = high
                ? [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(8), .seconds(8)]
                : [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(4), .seconds(4)]
            #expect(delays == expected)
        }
    }

    @Test func randomDelaysStayWithinTheWindow() {
        var rng = SystemRandomNumberGenerator()
        let policy = Machine.Policy(refreshSkew: .seconds(60), retryInitial: .milliseconds(100), retryMax: .seconds(5))
        for failures in 1...12 {
            let ceiling = Machine.ceiling(policy: policy, attempt: failures - 1)
            for _ in 0..<50 {
                let d = Machine.failureDelay(policy: policy, failures: failures, using: &rng)
                #expect(d >= ceiling / 2 && d <= ceiling && d <= .seconds(5))
            }
        }
    }

    @Test func unexpiredTokenIsStillServedWhileBackingOff() {
        var m = machine(skew: .seconds(60), initial: .seconds(120), max: .seconds(240))
        let token = primed(&m, expiresAt: t0.adding(.seconds(100)), at: t0)
        let now = t0.adding(.seconds(70))  // due for refresh, not expired
        #expect(m.tokenRequested(rejected: nil, now: now) == .startRefresh(.expiring))
        var rng = CredentialZeroRandom()
        let failure = m.refreshFailed(transient(), now: now, using: &rng)
        #expect(m.tokenRequested(rejected: nil, now: now.adding(.milliseconds(100))) == .returnToken(token))
        // The caller that had it refused gets the error, not the same token again.
        #expect(m.tokenRequested(rejected: token.generation, now: now.adding(.milliseconds(100))) == .fail(failure.error))
        // Once expired, nobody gets it.
        let afterExpiry = t0.adding(.seconds(100))
        #expect(afterExpiry < failure.retryAt)
        #expect(m.tokenRequested(rejected: nil, now: afterExpiry) == .fail(failure.error))
    }

    @Test func invalidGrantEntersFailedOnceAndResumeRecovers() {
        var m = machine(initial: .seconds(1), max: .seconds(300))
        #expect(m.tokenRequested(rejected: nil, now: t0) == .startRefresh(.initial))
        var rng = CredentialZeroRandom()
        let first = m.refreshFailed(invalidGrant(), now: t0, using: &rng)
        #expect(first.enteredFailed)
        #expect(first.retryAt == t0.adding(.seconds(300)))
        #expect(m.stateDescription(now: t0) == "failed: invalid_grant")
        #expect(m.tokenRequested(rejected: nil, now: t0.adding(.seconds(10))) == .fail(first.error))

        // The slow retry fails again: the episode continues, not logged again.
        #expect(m.timerFired(now: first.retryAt) == .startRefresh(.retry))
        let second = m.refreshFailed(invalidGrant(), now: first.retryAt, using: &rng)
        #expect(!second.enteredFailed && second.inFailedEpisode)
        // A transient error inside the episode keeps the slow pace.
        #expect(m.timerFired(now: second.retryAt) == .startRefresh(.retry))
        let third = m.refreshFailed(transient(), now: second.retryAt, using: &rng)
        #expect(third.retryAt == second.retryAt.adding(.seconds(300)))
        #expect(!third.enteredFailed)

        // SIGHUP: retry at once; success ends the episode (recovery reported once).
        let now = third.retryAt.adding(.seconds(-100))
        #expect(m.resume(now: now) == .resumed)
        #expect(m.resume(now: now) == nil)  // already refreshing
        let success = m.refreshSucceeded(grant("new"), now: now)
        #expect(success.recoveredFrom?.oauthError == "invalid_grant")
        #expect(m.stateDescription(now: now) == "valid")
        #expect(m.counts.rejected == 2 && m.counts.failed == 1 && m.counts.succeeded == 1)
    }

    @Test func changedRefreshInputResumesFailedCredential() {
        var m = machine()
        #expect(m.tokenRequested(rejected: nil, now: t0) == .startRefresh(.initial))
        var rng = CredentialZeroRandom()
        _ = m.refreshFailed(invalidGrant(), now: t0, using: &rng)
        #expect(m.sourceChanged(.refreshInputs, now: t0.adding(.seconds(5))) == .resumed)
        #expect(m.tokenRequested(rejected: nil, now: t0.adding(.seconds(5))) == .waitForRefresh)
    }

    @Test func changedTokenSourceMakesTheTokenStale() {
        var m = machine()
        let token = primed(&m, at: t0)
        #expect(m.sourceChanged(.token, now: t0) == nil)
        #expect(m.stateDescription(now: t0) == "stale")
        #expect(m.tokenRequested(rejected: nil, now: t0) == .startRefresh(.sourceChanged))
        let next = m.refreshSucceeded(grant("b"), now: t0).token
        #expect(next.generation == token.generation + 1)
    }

    @Test func forceRefreshBypassesBackoffAndJoinsARunningRefresh() {
        var m = machine()
        #expect(m.tokenRequested(rejected: nil, now: t0) == .startRefresh(.initial))
        #expect(m.forceRefreshRequested(now: t0) == .waitForRefresh)
        var rng = CredentialZeroRandom()
        _ = m.refreshFailed(transient(), now: t0, using: &rng)
        #expect(m.forceRefreshRequested(now: t0) == .startRefresh(.forced))
    }

    @Test func generationsIncreaseAndTimerIsIgnoredWhenIdle() {
        var m = machine()
        _ = primed(&m, at: t0)
        #expect(m.timerFired(now: t0.adding(.seconds(1000))) == .none)
        #expect(m.forceRefreshRequested(now: t0) == .startRefresh(.forced))
        #expect(m.refreshSucceeded(grant("b"), now: t0).token.generation == 2)
        #expect(m.forceRefreshRequested(now: t0) == .startRefresh(.forced))
        #expect(m.refreshSucceeded(grant("c"), now: t0).token.generation == 3)
    }
}
