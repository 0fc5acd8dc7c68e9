import Logging
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

/// Make-before-break token rotation (`reconnect_before_expiry`).
@Suite("UpstreamSupervisor rotation")
struct UpstreamSupervisorRotationTests {
    typealias S = UpstreamSupervisor
    let t0 = ContinuousClock.now

    private func supervisor(rotate: Bool = true, auth: String? = "token", fatal: [UInt16] = []) -> S {
        var settings = UpstreamFixtures.settings(auth: auth, fatal: fatal)
        settings.reconnectBeforeExpiry = rotate
        return S(settings: settings, random: SplitMix64(seed: 1), now: t0)
    }

    /// Start → open on epoch 1 at t0.
    private func open(_ s: inout S) {
        _ = s.handle(.start(now: t0))
        if case .waitingForCredentials = s.state { _ = s.handle(.credentialsReady(now: t0)) }
        _ = s.handle(.connected(now: t0))
        #expect(s.state == .open(epoch: 1, since: t0))
    }

    private func at(_ seconds: Int) -> ContinuousClock.Instant { t0 + .seconds(seconds) }

    @Test func successorOpensBeforeTheOldIsRetired() {
        var s = supervisor()
        open(&s)
        #expect(s.handle(.renewalDue(now: at(10))).upstreamNonLog == [.fetchCredentials(forceRefresh: false)])
        #expect(s.state == .open(epoch: 1, since: t0))
        #expect(s.renewal == .fetchingCredentials)
        #expect(s.handle(.credentialsReady(now: at(10))) == [.connectSuccessor(epoch: 2)])
        #expect(s.state == .open(epoch: 1, since: t0), "the old connection stays open")
        #expect(s.renewal == .connecting(epoch: 2))
        #expect(s.status.phase == .open)
        #expect(s.handle(.connected(now: at(11))).upstreamNonLog == [.retire(epoch: 1, code: 1000, reason: "token rotation")])
        #expect(s.state == .open(epoch: 2, since: at(11)))
        #expect(s.renewal == nil)
        #expect(s.status.connects == 2)
        #expect(s.status.epoch == 2)
        // The next rotation works the same way.
        _ = s.handle(.renewalDue(now: at(20)))
        #expect(s.handle(.credentialsReady(now: at(20))) == [.connectSuccessor(epoch: 3)])
        #expect(s.handle(.connected(now: at(20))).upstreamNonLog == [.retire(epoch: 2, code: 1000, reason: "token rotation")])
    }

    @Test func renewalDueIsIgnoredWhenOffOrNotOpenOrAlreadyRenewing() {
        var off = supervisor(rotate: false)
        open(&off)
        #expect(off.handle(.renewalDue(now: at(1))).isEmpty)
        var noAuth = supervisor(auth: nil)
        open(&noAuth)
        #expect(noAuth.handle(.renewalDue(now: at(1))).isEmpty)
        var connecting = supervisor()
        _ = connecting.handle(.start(now: t0))
        #expect(connecting.handle(.renewalDue(now: at(1))).isEmpty)
        var s = supervisor()
        open(&s)
        _ = s.handle(.renewalDue(now: at(1)))
        #expect(s.handle(.renewalDue(now: at(2))).isEmpty)
    }

    @Test func failedSuccessorKeepsTheOldConnectionAndRetriesLater() {
        var s = supervisor()
        open(&s)
        _ = s.handle(.renewalDue(now: at(10)))
        _ = s.handle(.credentialsReady(now: at(10)))
        let actions = s.handle(.connectFailed(error: "refused", now: at(10)))
        #expect(!actions.contains(.abortConnection) && !actions.contains { if case .sendClose = $0 { true } else { false } })
        #expect(s.state == .open(epoch: 1, since: t0))
        guard case .retrying(let retryAt) = s.renewal else {
            Issue.record("not retrying: \(String(describing: s.renewal))")
            return
        }
        #expect(actions.upstreamNonLog == [.scheduleTimer(at: retryAt)])
        #expect(retryAt > at(10))
        // Early fire re-arms; a second renewalDue does not start a parallel renewal.
        #expect(s.handle(.timerFired(now: at(10))) == [.scheduleTimer(at: retryAt)])
        #expect(s.handle(.renewalDue(now: at(10))).isEmpty)
        #expect(s.handle(.timerFired(now: retryAt)).upstreamNonLog == [.fetchCredentials(forceRefresh: false)])
        // Credentials failing is also survivable.
        #expect(s.handle(.credentialsFailed(reason: "endpoint down", now: retryAt)).upstreamNonLog.count == 1)
        #expect(s.state == .open(epoch: 1, since: t0))
        guard case .retrying(let second) = s.renewal else {
            Issue.record("not retrying: \(String(describing: s.renewal))")
            return
        }
        _ = s.handle(.timerFired(now: second))
        #expect(s.handle(.credentialsReady(now: second)) == [.connectSuccessor(epoch: 3)])
        // An auth rejection of the successor forces a refresh on the retry.
        _ = s.handle(.upgradeFailed(status: 401, retryAfter: nil, now: second))
        guard case .retrying(let third) = s.renewal else {
            Issue.record("not retrying: \(String(describing: s.renewal))")
            return
        }
        #expect(s.handle(.timerFired(now: third)).upstreamNonLog == [.fetchCredentials(forceRefresh: true)])
        _ = s.handle(.credentialsReady(now: third))
        #expect(s.handle(.connected(now: third)).upstreamNonLog == [.retire(epoch: 1, code: 1000, reason: "token rotation")])
        #expect(s.state == .open(epoch: 4, since: third))
    }

    @Test func oldClosingDuringRenewalLetsTheSuccessorProceed() {
        var s = supervisor()
        open(&s)
        _ = s.handle(.renewalDue(now: at(10)))
        _ = s.handle(.credentialsReady(now: at(10)))
        #expect(s.handle(.closed(code: 4001, reason: "token expired", now: at(11))).upstreamNonLog.isEmpty)
        #expect(s.state == .connecting(attempt: 2))
        #expect(s.renewal == nil)
        #expect(s.status.lastCloseCode == 4001)
        // The successor is now the ordinary attempt.
        #expect(s.handle(.connected(now: at(12))).upstreamNonLog.isEmpty)
        #expect(s.state == .open(epoch: 2, since: at(12)))
    }

    @Test func oldClosingWhileFetchingWaitsForTheCredentials() {
        var s = supervisor()
        open(&s)
        _ = s.handle(.renewalDue(now: at(10)))
        #expect(s.handle(.closed(code: nil, reason: "", now: at(11))).upstreamNonLog.isEmpty)
        #expect(s.state == .waitingForCredentials(attempt: 2))
        #expect(s.handle(.credentialsReady(now: at(11))) == [.connect(epoch: 2)])
    }

    @Test func oldClosingWithFatalCodeStopsAndAbortsTheSuccessor() {
        var s = supervisor(fatal: [4003])
        open(&s)
        _ = s.handle(.renewalDue(now: at(10)))
        _ = s.handle(.credentialsReady(now: at(10)))
        #expect(s.handle(.closed(code: 4003, reason: "banned", now: at(11))).upstreamNonLog == [.abortConnection])
        guard case .stopped = s.state else {
            Issue.record("not stopped: \(s.state)")
            return
        }
    }

    @Test func leavingOpenOtherwiseAbandonsTheSuccessor() {
        for event in [S.Event.pause(now: at(11)), .reconnectRequested(now: at(11)), .shutdown(now: at(11)),
                      .removed(now: at(11)), .keepaliveDead(reason: .idleTimeout(.seconds(1)), now: at(11))] {
            var s = supervisor()
            open(&s)
            _ = s.handle(.renewalDue(now: at(10)))
            _ = s.handle(.credentialsReady(now: at(10)))
            let actions = s.handle(event)
            #expect(actions.first == S.Action.abortSuccessor, "\(event): \(actions)")
            #expect(s.renewal == nil)
            // A late open of the abandoned successor is not a rotation.
            #expect(!s.handle(.connected(now: at(12))).contains { if case .retire = $0 { true } else { false } })
        }
    }

    @Test func shutdownWhileFetchingClosesTheOldAndIgnoresTheLateToken() {
        var s = supervisor()
        open(&s)
        _ = s.handle(.renewalDue(now: at(10)))
        let actions = s.handle(.shutdown(now: at(11)))
        #expect(!actions.contains(.abortSuccessor))
        #expect(actions.contains(.sendClose(code: 1001, reason: "going away")))
        #expect(s.handle(.credentialsReady(now: at(11))).isEmpty)
        #expect(s.state == .shuttingDown)
    }
}
