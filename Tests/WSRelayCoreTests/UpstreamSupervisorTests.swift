import Logging
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

@Suite("UpstreamSupervisor")
struct UpstreamSupervisorTests {
    typealias S = UpstreamSupervisor
    let t0 = ContinuousClock.now

    private func supervisor(
        auth: String? = nil,
        fatal: [UInt16] = [],
        resetAfter: Duration = .seconds(60),
        seed: UInt64 = 1
    ) -> S {
        S(
            settings: UpstreamFixtures.settings(auth: auth, fatal: fatal, resetAfter: resetAfter),
            random: SplitMix64(seed: seed),
            now: t0
        )
    }

    /// Drives a fresh supervisor to `open` at `now`; returns the epoch.
    @discardableResult
    private func open(_ s: inout S, at now: ContinuousClock.Instant) -> UInt64 {
        if case .idle = s.state { _ = s.handle(.start(now: now)) }
        if case .waitingForCredentials = s.state { _ = s.handle(.credentialsReady(now: now)) }
        _ = s.handle(.connected(now: now))
        guard case .open(let epoch, _) = s.state else {
            Issue.record("not open: \(s.state)")
            return 0
        }
        return epoch
    }

    /// Fires the pending backoff timer; returns its instant.
    @discardableResult
    private func fireBackoff(_ s: inout S) -> ContinuousClock.Instant? {
        guard case .backingOff(let until, _) = s.state else {
            Issue.record("not backing off: \(s.state)")
            return nil
        }
        _ = s.handle(.timerFired(now: until))
        return until
    }

    // MARK: - Starting

    @Test func startWithoutAuthConnectsDirectly() {
        var s = supervisor()
        #expect(s.state == .idle)
        let actions = s.handle(.start(now: t0))
        #expect(actions.upstreamNonLog == [.connect(epoch: 1)])
        #expect(s.state == .connecting(attempt: 1))
        #expect(s.handle(.connected(now: t0 + .seconds(1))).upstreamNonLog == [])
        #expect(s.state == .open(epoch: 1, since: t0 + .seconds(1)))
        #expect(s.status.connects == 1)
        #expect(s.status.phase == .open)
    }

    @Test func startWithAuthFetchesCredentialsFirst() {
        var s = supervisor(auth: "token")
        #expect(s.handle(.start(now: t0)).upstreamNonLog == [.fetchCredentials(forceRefresh: false)])
        #expect(s.state == .waitingForCredentials(attempt: 1))
        #expect(s.status.phase.description == "refreshing credentials")
        #expect(s.handle(.credentialsReady(now: t0)) == [.connect(epoch: 1)])
        #expect(s.state == .connecting(attempt: 1))
    }

    @Test func secondStartIsIgnored() {
        var s = supervisor()
        _ = s.handle(.start(now: t0))
        #expect(s.handle(.start(now: t0)).isEmpty)
        #expect(s.state == .connecting(attempt: 1))
    }

    // MARK: - Credentials refresh

    @Test func refreshCloseCodeRefreshesAndReconnectsAtOnce() {
        var s = supervisor(auth: "token")
        #expect(open(&s, at: t0) == 1)
        let closed = s.handle(.closed(code: 4001, reason: "token expired", now: t0 + .seconds(5)))
        #expect(closed.upstreamNonLog == [.fetchCredentials(forceRefresh: true)])
        #expect(closed.upstreamTimer == nil)
        #expect(s.state == .waitingForCredentials(attempt: 2))
        #expect(s.handle(.credentialsReady(now: t0 + .seconds(5))) == [.connect(epoch: 2)])
        #expect(s.status.lastCloseCode == 4001)
        #expect(s.status.lastCloseReason == "token expired")
        #expect(s.status.disconnects == ["4001": 1])
        #expect(s.backoff.attempt == 0)
    }

    @Test func refreshCloseCodeTwiceInARowBacksOff() {
        var s = supervisor(auth: "token")
        open(&s, at: t0)
        _ = s.handle(.closed(code: 4001, reason: "", now: t0 + .seconds(1)))
        _ = s.handle(.credentialsReady(now: t0 + .seconds(1)))
        _ = s.handle(.connected(now: t0 + .seconds(2)))
        let second = s.handle(.closed(code: 4001, reason: "", now: t0 + .seconds(3)))
        guard case .backingOff(let until, let cause) = s.state else {
            Issue.record("expected backoff, got \(s.state)")
            return
        }
        #expect(cause == "4001")
        #expect(second.upstreamNonLog == [.scheduleTimer(at: until)])
        #expect(until - (t0 + .seconds(3)) <= .seconds(1))
        #expect(second.upstreamLogs.first?.0 == .warning)
        // After the wait the token is still force-refreshed...
        #expect(s.handle(.timerFired(now: until)).upstreamNonLog == [.fetchCredentials(forceRefresh: true)])
        _ = s.handle(.credentialsReady(now: until))
        _ = s.handle(.connected(now: until))
        // ...and a third rejection backs off again, with a grown window.
        _ = s.handle(.closed(code: 4003, reason: "", now: until + .seconds(1)))
        guard case .backingOff = s.state else {
            Issue.record("expected backoff, got \(s.state)")
            return
        }
        #expect(s.backoff.attempt == 2)
        #expect(s.status.disconnects == ["4001": 2, "4003": 1])
    }

    @Test func http401RefreshesThenBacksOff() {
        var s = supervisor(auth: "token")
        _ = s.handle(.start(now: t0))
        _ = s.handle(.credentialsReady(now: t0))
        let first = s.handle(.upgradeFailed(status: 401, retryAfter: nil, now: t0))
        #expect(first.upstreamNonLog == [.fetchCredentials(forceRefresh: true)])
        _ = s.handle(.credentialsReady(now: t0))
        let second = s.handle(.upgradeFailed(status: 401, retryAfter: nil, now: t0))
        #expect(second.upstreamTimer != nil)
        #expect(s.status.disconnects == ["http 401": 2])
        #expect(s.status.lastError == "HTTP 401")
    }

    @Test func refreshOnStatusIsConfigurable() {
        var settings = UpstreamFixtures.settings(auth: "token")
        settings.refreshOnStatus = [401, 403]
        var s = S(settings: settings, random: SplitMix64(seed: 3), now: t0)
        _ = s.handle(.start(now: t0))
        _ = s.handle(.credentialsReady(now: t0))
        #expect(s.handle(.upgradeFailed(status: 403, retryAfter: nil, now: t0)).upstreamNonLog == [.fetchCredentials(forceRefresh: true)])
    }

    @Test func authRejectionWithoutCredentialsBacksOff() {
        var s = supervisor(auth: nil)
        open(&s, at: t0)
        let actions = s.handle(.closed(code: 4001, reason: "", now: t0 + .seconds(1)))
        #expect(actions.upstreamTimer != nil)
        #expect(!actions.contains(.fetchCredentials(forceRefresh: true)))
    }

    @Test func nonAuthOutcomeEndsTheRefreshRun() {
        var s = supervisor(auth: "token")
        open(&s, at: t0)
        _ = s.handle(.closed(code: 4001, reason: "", now: t0 + .seconds(1)))  // immediate refresh
        _ = s.handle(.credentialsReady(now: t0 + .seconds(1)))
        _ = s.handle(.connected(now: t0 + .seconds(1)))
        _ = s.handle(.closed(code: nil, reason: "", now: t0 + .seconds(2)))  // 1006: backoff, run over
        let retry = fireBackoff(&s)!
        #expect(s.state == .waitingForCredentials(attempt: 3))
        _ = s.handle(.credentialsReady(now: retry))
        _ = s.handle(.connected(now: retry))
        let again = s.handle(.closed(code: 4001, reason: "", now: retry + .seconds(1)))
        #expect(again.upstreamNonLog == [.fetchCredentials(forceRefresh: true)])
    }

    @Test func stableConnectionEndsTheRefreshRun() {
        var s = supervisor(auth: "token")
        open(&s, at: t0)
        _ = s.handle(.closed(code: 4001, reason: "", now: t0 + .seconds(1)))
        _ = s.handle(.credentialsReady(now: t0 + .seconds(1)))
        _ = s.handle(.connected(now: t0 + .seconds(1)))
        // The fresh token worked for an hour; its expiry is a new, first rejection.
        let later = s.handle(.closed(code: 4001, reason: "", now: t0 + .seconds(3601)))
        #expect(later.upstreamNonLog == [.fetchCredentials(forceRefresh: true)])
        #expect(s.state == .waitingForCredentials(attempt: 1))
    }

    @Test func credentialFailureBacksOffAndKeepsForcing() {
        var s = supervisor(auth: "token")
        open(&s, at: t0)
        _ = s.handle(.closed(code: 4001, reason: "", now: t0 + .seconds(1)))
        let failed = s.handle(.credentialsFailed(reason: "token endpoint 500", now: t0 + .seconds(2)))
        #expect(failed.upstreamTimer != nil)
        #expect(s.status.lastError == "credentials: token endpoint 500")
        #expect(s.status.disconnects["credentials"] == 1)
        #expect(s.status.phase == .backingOff)
        fireBackoff(&s)
        #expect(s.state == .waitingForCredentials(attempt: 3))
        // A credentials answer while not waiting is stale.
        var t = supervisor(auth: "token")
        #expect(t.handle(.credentialsReady(now: t0)).isEmpty)
    }

    // MARK: - Fatal codes

    @Test func fatalCloseCodeStops() {
        var s = supervisor(auth: "token", fatal: [4403])
        open(&s, at: t0)
        let actions = s.handle(.closed(code: 4403, reason: "banned", now: t0 + .seconds(10)))
        #expect(actions.upstreamNonLog.isEmpty)
        #expect(actions.upstreamLogs.map(\.0) == [.error])
        #expect(s.state == .stopped(reason: "fatal close code 4403 (banned)"))
        #expect(s.status.phase.description == "stopped")
        #expect(s.status.lastError == "fatal close code 4403 (banned)")
        #expect(s.status.nextAttempt == nil)
        // Nothing brings it back on its own.
        #expect(s.handle(.timerFired(now: t0 + .seconds(100))).isEmpty)
        #expect(s.handle(.resume(now: t0 + .seconds(100))).isEmpty)
        #expect(s.handle(.closed(code: nil, reason: "", now: t0 + .seconds(100))).isEmpty)
        #expect(s.handle(.pause(now: t0 + .seconds(100))).isEmpty)
        // An operator reconnect does.
        let restart = s.handle(.reconnectRequested(now: t0 + .seconds(200)))
        #expect(restart.upstreamNonLog == [.fetchCredentials(forceRefresh: false)])
    }

    @Test func fatalWinsOverRefresh() {
        var s = supervisor(auth: "token", fatal: [4001])
        open(&s, at: t0)
        _ = s.handle(.closed(code: 4001, reason: "", now: t0))
        guard case .stopped = s.state else {
            Issue.record("expected stopped, got \(s.state)")
            return
        }
    }

    // MARK: - Backoff

    @Test func dropsBackOffWithinBoundsAndGrow() {
        var s = supervisor(seed: 11)
        let reference = ReconnectBackoff(UpstreamFixtures.settings().reconnect)
        var now = t0
        for n in 0..<10 {
            open(&s, at: now)
            now = now + .seconds(2)
            let actions = s.handle(.closed(code: nil, reason: "", now: now))
            guard case .backingOff(let until, let cause) = s.state else {
                Issue.record("expected backoff, got \(s.state)")
                return
            }
            #expect(cause == "1006")
            #expect(actions.upstreamNonLog == [.scheduleTimer(at: until)])
            let delay = until - now
            #expect(delay >= ReconnectBackoff.floor)
            #expect(delay <= reference.ceiling(forAttempt: n))
            #expect(s.status.nextAttempt == until)
            #expect(s.backoff.attempt == n + 1)
            #expect(s.handle(.timerFired(now: until)) == [.connect(epoch: UInt64(n + 2))])
            #expect(s.state == .connecting(attempt: n + 2))
            now = until
        }
        #expect(s.status.disconnects == ["1006": 10])
        #expect(s.status.lastCloseCode == 1006)
    }

    @Test func delaysGrowAcrossAttemptsOnAverage() {
        var totals = [Duration](repeating: .zero, count: 7)
        for seed in 0..<300 as Range<UInt64> {
            var s = supervisor(seed: seed)
            _ = s.handle(.start(now: t0))
            var now = t0
            for n in 0..<7 {
                _ = s.handle(.connectFailed(error: "connection refused", now: now))
                let until = fireBackoff(&s)!
                totals[n] += until - now
                now = until
            }
        }
        for n in 1..<6 { #expect(totals[n] > totals[n - 1]) }
    }

    @Test func acceptThenDropNeverResetsTheCounter() {
        var s = supervisor(seed: 5)
        var now = t0
        for n in 0..<12 {
            open(&s, at: now)
            now = now + .seconds(59)  // just short of resetAfter
            _ = s.handle(.closed(code: 1000, reason: "bye", now: now))
            #expect(s.backoff.attempt == n + 1)
            now = fireBackoff(&s)!
        }
        #expect(s.status.connects == 12)
        #expect(s.status.attempt == 13)
    }

    @Test func connectionUpForResetAfterResetsTheCounter() {
        var s = supervisor(seed: 8)
        _ = s.handle(.start(now: t0))
        var now = t0
        for _ in 0..<5 {
            _ = s.handle(.connectFailed(error: "timeout", now: now))
            now = fireBackoff(&s)!
        }
        #expect(s.backoff.attempt == 5)
        _ = s.handle(.connected(now: now))
        let closedAt = now + .seconds(60)
        _ = s.handle(.closed(code: nil, reason: "", now: closedAt))
        #expect(s.backoff.attempt == 1)  // reset, then one draw
        guard case .backingOff(let until, _) = s.state else {
            Issue.record("expected backoff, got \(s.state)")
            return
        }
        #expect(until - closedAt <= .seconds(1))
        _ = s.handle(.timerFired(now: until))
        #expect(s.state == .connecting(attempt: 1))
    }

    @Test func connectFailureBacksOffAndRecordsTheError() {
        var s = supervisor()
        _ = s.handle(.start(now: t0))
        let actions = s.handle(.connectFailed(error: "TLS handshake failed", now: t0))
        #expect(actions.upstreamTimer != nil)
        #expect(s.status.lastError == "TLS handshake failed")
        #expect(s.status.disconnects == ["connect error": 1])
        #expect(actions.upstreamLogs.first?.1.contains("TLS handshake failed") == true)
    }

    @Test func earlyOrStaleTimerDoesNotConnect() {
        var s = supervisor()
        _ = s.handle(.start(now: t0))
        _ = s.handle(.connectFailed(error: "x", now: t0))
        guard case .backingOff(let until, _) = s.state else {
            Issue.record("expected backoff")
            return
        }
        #expect(s.handle(.timerFired(now: until - .milliseconds(1))) == [.scheduleTimer(at: until)])
        #expect(s.handle(.timerFired(now: until)) == [.connect(epoch: 2)])
        #expect(s.handle(.timerFired(now: until + .seconds(1))).isEmpty)
    }

    @Test func keepaliveDeathAbortsAndBacksOff() {
        var s = supervisor()
        open(&s, at: t0)
        let actions = s.handle(.keepaliveDead(reason: .pongTimeout(.seconds(10)), now: t0 + .seconds(40)))
        #expect(actions.first == .abortConnection)
        #expect(actions.upstreamTimer != nil)
        #expect(s.status.disconnects == ["pong timeout": 1])
        #expect(s.status.lastError == "no pong within 10s")
        open(&s, at: fireBackoff(&s)!)
        _ = s.handle(.keepaliveDead(reason: .idleTimeout(.seconds(60)), now: t0 + .seconds(200)))
        #expect(s.status.disconnects == ["pong timeout": 1, "idle timeout": 1])
    }

    // MARK: - Retry-After

    @Test func retryAfterIsAFloorOnTheWait() {
        for seed in 0..<50 as Range<UInt64> {
            var s = supervisor(seed: seed)
            _ = s.handle(.start(now: t0))
            let actions = s.handle(.upgradeFailed(status: 429, retryAfter: .seconds(30), now: t0))
            guard case .backingOff(let until, let cause) = s.state else {
                Issue.record("expected backoff")
                return
            }
            #expect(cause == "http 429")
            #expect(until - t0 >= .seconds(30))
            #expect(actions.upstreamTimer == until)
            #expect(s.status.nextAttempt == until)
        }
    }

    @Test func backoffWinsWhenLongerThanRetryAfter() {
        var settings = UpstreamFixtures.settings()
        settings.reconnect.initial = .seconds(100)
        settings.reconnect.max = .seconds(100)
        var s = S(settings: settings, random: UpstreamMaxRandom(), now: t0)
        _ = s.handle(.start(now: t0))
        _ = s.handle(.upgradeFailed(status: 503, retryAfter: .seconds(5), now: t0))
        #expect(s.status.nextAttempt == t0 + .seconds(100))
    }

    @Test func serviceUnavailableWithoutRetryAfterUsesBackoff() {
        var s = supervisor()
        _ = s.handle(.start(now: t0))
        _ = s.handle(.upgradeFailed(status: 503, retryAfter: nil, now: t0))
        guard case .backingOff(let until, _) = s.state else {
            Issue.record("expected backoff")
            return
        }
        #expect(until - t0 <= .seconds(1))
        #expect(s.status.disconnects == ["http 503": 1])
    }

    // MARK: - Epochs

    @Test func epochOnlyGrows() {
        var s = supervisor(auth: "token")
        var seen: [UInt64] = []
        var now = t0
        func record(_ actions: [S.Action]) {
            for case .connect(let epoch) in actions { seen.append(epoch) }
        }
        record(s.handle(.start(now: now)))
        record(s.handle(.credentialsReady(now: now)))
        _ = s.handle(.connectFailed(error: "refused", now: now))
        now = fireBackoff(&s)!
        record(s.handle(.credentialsReady(now: now)))
        _ = s.handle(.connected(now: now))
        #expect(s.state == .open(epoch: 2, since: now))
        record(s.handle(.closed(code: 4001, reason: "", now: now)))
        record(s.handle(.credentialsReady(now: now)))
        _ = s.handle(.connected(now: now))
        record(s.handle(.reconnectRequested(now: now)))
        record(s.handle(.credentialsReady(now: now)))
        #expect(seen == [1, 2, 3, 4])
        #expect(s.status.epoch == 4)
    }

    // MARK: - Pause / resume / reconnect

    @Test func pauseClosesAndResumeReconnects() {
        var s = supervisor(auth: "token")
        open(&s, at: t0)
        let paused = s.handle(.pause(now: t0 + .seconds(5)))
        #expect(paused.upstreamNonLog == [.sendClose(code: 1000, reason: "paused")])
        #expect(s.state == .paused)
        #expect(s.status.phase.description == "paused")
        #expect(s.status.since == t0 + .seconds(5))
        // The echo of our close, timers and credential answers do nothing while paused.
        #expect(s.handle(.closed(code: 1000, reason: "paused", now: t0 + .seconds(6))).isEmpty)
        #expect(s.handle(.timerFired(now: t0 + .seconds(100))).isEmpty)
        #expect(s.handle(.credentialsReady(now: t0 + .seconds(100))).isEmpty)
        #expect(s.handle(.pause(now: t0 + .seconds(100))).isEmpty)
        #expect(s.handle(.reconnectRequested(now: t0 + .seconds(100))).upstreamNonLog.isEmpty)
        #expect(s.state == .paused)
        let resumed = s.handle(.resume(now: t0 + .seconds(200)))
        #expect(resumed.upstreamNonLog == [.fetchCredentials(forceRefresh: false)])
        #expect(s.state == .waitingForCredentials(attempt: 1))
        #expect(s.status.disconnects == ["pause": 1])
    }

    @Test func pauseWhileBackingOffCancelsTheTimer() {
        var s = supervisor()
        _ = s.handle(.start(now: t0))
        _ = s.handle(.connectFailed(error: "x", now: t0))
        #expect(s.handle(.pause(now: t0)).upstreamNonLog == [.cancelTimer])
        #expect(s.status.nextAttempt == nil)
        #expect(s.handle(.resume(now: t0 + .seconds(1))).upstreamNonLog == [.connect(epoch: 2)])
        #expect(s.backoff.attempt == 0)
    }

    @Test func pauseWhileConnectingAbortsTheAttempt() {
        var s = supervisor()
        _ = s.handle(.start(now: t0))
        #expect(s.handle(.pause(now: t0)).upstreamNonLog == [.abortConnection])
        #expect(s.handle(.connected(now: t0)).isEmpty)
        #expect(s.state == .paused)
    }

    @Test func pauseBeforeStartWaitsForResume() {
        var s = supervisor()
        _ = s.handle(.pause(now: t0))
        #expect(s.handle(.start(now: t0)).isEmpty)
        #expect(s.state == .paused)
        #expect(s.handle(.resume(now: t0)).upstreamNonLog == [.connect(epoch: 1)])
    }

    @Test func resumeWhenNotPausedIsIgnored() {
        var s = supervisor()
        open(&s, at: t0)
        #expect(s.handle(.resume(now: t0)).isEmpty)
    }

    @Test func reconnectRequestedWhileOpen() {
        var s = supervisor()
        open(&s, at: t0)
        let actions = s.handle(.reconnectRequested(now: t0 + .seconds(1)))
        #expect(actions.upstreamNonLog == [.sendClose(code: 1000, reason: "reconnect requested"), .connect(epoch: 2)])
        #expect(s.status.disconnects == ["reconnect": 1])
    }

    @Test func reconnectRequestedWhileBackingOffSkipsTheWait() {
        var s = supervisor()
        _ = s.handle(.start(now: t0))
        for _ in 0..<4 {
            _ = s.handle(.connectFailed(error: "x", now: t0))
            _ = fireBackoff(&s)
        }
        _ = s.handle(.connectFailed(error: "x", now: t0))
        let actions = s.handle(.reconnectRequested(now: t0 + .seconds(1)))
        #expect(actions.upstreamNonLog == [.cancelTimer, .connect(epoch: 6)])
        #expect(s.backoff.attempt == 0)
        #expect(s.state == .connecting(attempt: 1))
    }

    @Test func reconnectRequestedWhileConnectingIsIgnored() {
        var s = supervisor()
        _ = s.handle(.start(now: t0))
        #expect(s.handle(.reconnectRequested(now: t0)).upstreamNonLog.isEmpty)
        #expect(s.state == .connecting(attempt: 1))
    }

    // MARK: - Shutdown / removal

    /// Every state, and how to reach it.
    private func reach(_ name: String) -> S {
        var s = supervisor(auth: "token", fatal: [4403])
        let t = t0
        switch name {
        case "idle": break
        case "waitingForCredentials": _ = s.handle(.start(now: t))
        case "connecting":
            _ = s.handle(.start(now: t))
            _ = s.handle(.credentialsReady(now: t))
        case "open": open(&s, at: t)
        case "backingOff":
            _ = s.handle(.start(now: t))
            _ = s.handle(.credentialsFailed(reason: "x", now: t))
        case "paused":
            open(&s, at: t)
            _ = s.handle(.pause(now: t))
        case "stopped":
            open(&s, at: t)
            _ = s.handle(.closed(code: 4403, reason: "", now: t))
        default: Issue.record("unknown state \(name)")
        }
        return s
    }

    static let allStates = ["idle", "waitingForCredentials", "connecting", "open", "backingOff", "paused", "stopped"]

    @Test(arguments: allStates)
    func shutdownFromEveryStateFinishes(_ name: String) {
        var s = reach(name)
        let now = t0 + .seconds(10)
        var actions = s.handle(.shutdown(now: now))
        let sentClose = actions.contains(.sendClose(code: 1001, reason: "going away"))
        #expect(sentClose == (name == "open"))
        #expect(!actions.contains { if case .sendClose = $0 { return $0 != .sendClose(code: 1001, reason: "going away") } else { return false } })
        if name == "open" {
            #expect(s.state == .shuttingDown)
            #expect(s.status.phase.description == "closing")
            #expect(actions.upstreamTimer == now + .seconds(5))
            #expect(!actions.contains(.finished))
            actions = s.handle(.closed(code: 1001, reason: "going away", now: now + .seconds(1)))
            #expect(actions == [.cancelTimer, .finished])
        } else {
            #expect(actions.last == .finished)
        }
        if name == "backingOff" { #expect(actions.contains(.cancelTimer)) }
        if name == "connecting" { #expect(actions.contains(.abortConnection)) }
        #expect(actions.filter { $0 == .finished }.count == 1)
        #expect(s.state == .finished)
        #expect(!actions.contains { if case .connect = $0 { return true } else { return false } })
        // Finished is final.
        #expect(s.handle(.start(now: now)).isEmpty)
        #expect(s.handle(.timerFired(now: now + .seconds(100))).isEmpty)
        #expect(s.handle(.reconnectRequested(now: now)).isEmpty)
        #expect(s.handle(.shutdown(now: now)).isEmpty)
    }

    @Test func shutdownGivesUpWaitingForTheCloseReply() {
        var s = supervisor()
        open(&s, at: t0)
        _ = s.handle(.shutdown(now: t0))
        #expect(s.handle(.shutdown(now: t0)).isEmpty)
        #expect(s.handle(.timerFired(now: t0 + .seconds(4))).isEmpty)
        let actions = s.handle(.timerFired(now: t0 + .seconds(5)))
        #expect(actions.upstreamNonLog == [.abortConnection, .finished])
        #expect(s.state == .finished)
    }

    @Test func removedClosesWithNormalClosure() {
        var s = supervisor()
        open(&s, at: t0)
        let actions = s.handle(.removed(now: t0))
        #expect(actions.upstreamNonLog == [.sendClose(code: 1000, reason: "upstream removed"), .scheduleTimer(at: t0 + .seconds(5))])
        #expect(s.handle(.keepaliveDead(reason: .pongTimeout(.seconds(10)), now: t0 + .seconds(1))) == [.abortConnection, .cancelTimer, .finished])
        #expect(s.status.disconnects == ["removed": 1])
    }

    // MARK: - Status

    @Test func statusSnapshot() {
        var s = supervisor()
        #expect(s.status.phase.description == "not started")
        #expect(s.status.name == "feed")
        open(&s, at: t0)
        _ = s.handle(.closed(code: 1011, reason: "server error", now: t0 + .seconds(3)))
        let status = s.status
        #expect(status.phase.description == "backing off")
        #expect(status.since == t0 + .seconds(3))
        #expect(status.epoch == 1)
        #expect(status.connects == 1)
        #expect(status.disconnects == ["1011": 1])
        #expect(status.lastCloseCode == 1011)
        #expect(status.lastCloseReason == "server error")
        #expect(status.nextAttempt != nil)
        #expect(status.messages == 0 && status.bytes == 0 && status.lastMessageAt == nil && status.lastPongRTT == nil)
        _ = fireBackoff(&s)
        #expect(s.status.phase.description == "connecting")
        #expect(s.status.nextAttempt == nil)
    }

    @Test func staleEventsAreIgnored() {
        var s = supervisor()
        #expect(s.handle(.connected(now: t0)).isEmpty)
        #expect(s.handle(.closed(code: 1000, reason: "", now: t0)).isEmpty)
        #expect(s.handle(.upgradeFailed(status: 500, retryAfter: nil, now: t0)).isEmpty)
        #expect(s.handle(.connectFailed(error: "x", now: t0)).isEmpty)
        #expect(s.handle(.keepaliveDead(reason: .pongTimeout(.seconds(1)), now: t0)).isEmpty)
        #expect(s.state == .idle)
        open(&s, at: t0)
        #expect(s.handle(.connected(now: t0)).isEmpty)
        #expect(s.handle(.connectFailed(error: "late", now: t0)).isEmpty)
        #expect(s.state == .open(epoch: 1, since: t0))
    }
}
