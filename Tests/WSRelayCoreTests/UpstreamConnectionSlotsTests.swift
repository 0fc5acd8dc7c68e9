import Testing
import WSRelayTestSupport
@testable import WSRelayCore

/// Which connection is which (current, successor, retiring), the auth-message gate, and the supervisor's
/// actions addressed to epochs — the decisions the driver used to make inline.
@Suite("UpstreamConnectionSlots")
struct UpstreamConnectionSlotsTests {
    typealias Slots = UpstreamConnectionSlots
    let t0 = ContinuousClock.now
    let wall0 = WallClockTime(microsecondsSinceEpoch: 1_800_000_000_000_000)

    private func slots(auth: String? = "token", rotate: Bool = false) -> Slots {
        var settings = UpstreamFixtures.settings(auth: auth)
        settings.reconnectBeforeExpiry = rotate
        return Slots(supervisor: UpstreamSupervisor(settings: settings, random: SplitMix64(seed: 1), now: t0))
    }

    private func credential(_ generation: UInt64, message: String? = nil, ok: String? = nil,
                            timeout: Duration? = nil, renewAt: WallClockTime? = nil) -> AttemptCredential {
        AttemptCredential(generation: generation, fingerprint: "fp\(generation)", apply: { _ in },
                          authMessage: message, authOKPattern: ok, authTimeout: timeout, renewAt: renewAt)
    }

    /// A comparable rendering of the actions, without log lines.
    private func render(_ actions: [Slots.Action]) -> [String] {
        actions.compactMap { action in
            switch action {
            case .fetchCredentials(let rejected): return "fetch rejected=\(rejected.map(String.init) ?? "nil")"
            case .connect(let epoch, let credential, let successor):
                return "connect \(epoch) gen=\(credential.map { String($0.generation) } ?? "nil")\(successor ? " successor" : "")"
            case .abandon(let epoch, let reason): return "abandon \(epoch) \(reason)"
            case .forget(let epoch): return "forget \(epoch)"
            case .close(let epoch, let code, let reason): return "close \(epoch) \(code) \(reason)"
            case .abort(let epoch, let code, let reason): return "abort \(epoch) \(code) \(reason)"
            case .opened(let epoch): return "opened \(epoch)"
            case .announceClosed(let epoch, let info): return "closed \(epoch) \(info.code)"
            case .endCurrent: return "endCurrent"
            case .transmit(let epoch, let message): return "transmit \(epoch) \(message)"
            case .sendAuthMessage(let epoch, let text): return "auth \(epoch) \(text)"
            case .sendSubscriptions(let epoch): return "subscribe \(epoch)"
            case .armAuthTimeout(let epoch, let after): return "authTimer \(epoch) \(after)"
            case .cancelAuthTimeout: return "cancelAuthTimer"
            case .armRenewal(let epoch, let after): return "renewal \(epoch) \(after)"
            case .scheduleTimer: return "timer"
            case .cancelTimer: return "cancelTimer"
            case .log: return nil
            case .answerSend(let id, let result): return "answer \(id) \(result)"
            case .finished: return "finished"
            }
        }
    }

    /// Start → credential `generation` → open on epoch 1.
    private func open(_ s: inout Slots, _ credential: AttemptCredential) -> [String] {
        _ = s.handle(.supervisor(.start(now: t0)))
        _ = s.handle(.credentialReady(credential, now: t0))
        return render(s.handle(.opened(epoch: 1, now: t0, wallNow: wall0)))
    }

    /// Rotation under way: epoch 1 open with credential 1, its successor (epoch 2, credential 2) connecting.
    private func rotating() -> Slots {
        var s = slots(rotate: true)
        _ = open(&s, credential(1))
        _ = s.handle(.renewalDue(epoch: 1, now: t0))
        _ = s.handle(.credentialReady(credential(2), now: t0))
        return s
    }

    @Test func anAttemptUsesTheFetchedCredentialAndARejectionNamesItsGeneration() {
        var s = slots()
        #expect(render(s.handle(.supervisor(.start(now: t0)))) == ["fetch rejected=nil"])
        #expect(render(s.handle(.credentialReady(credential(7), now: t0))) == ["endCurrent", "connect 1 gen=7"])
        #expect(render(s.handle(.failedToOpen(epoch: 1, .upgradeRejected(status: 401, reason: "Unauthorized", headers: []),
                                              retryAfter: nil, now: t0))) == ["fetch rejected=7"])
        #expect(s.currentEpoch == nil)
        #expect(render(s.handle(.credentialReady(credential(8), now: t0))) == ["endCurrent", "connect 2 gen=8"])
    }

    @Test func callbacksOfASupersededAttemptAreIgnored() {
        var s = slots(auth: nil)
        _ = s.handle(.supervisor(.start(now: t0)))
        _ = s.handle(.credentialReady(nil, now: t0))
        _ = s.handle(.opened(epoch: 1, now: t0, wallNow: wall0))
        // A reconnect request closes epoch 1 and connects epoch 2 in one step: the close names epoch 1.
        #expect(render(s.handle(.supervisor(.reconnectRequested(now: t0))))
                == ["close 1 1000 reconnect requested", "abandon 1 superseded", "endCurrent", "connect 2 gen=nil"])
        #expect(render(s.handle(.opened(epoch: 1, now: t0, wallNow: wall0))).isEmpty)
        #expect(render(s.handle(.closed(epoch: 1, .init(code: 1000, reason: "", initiator: .local), now: t0))) == ["closed 1 1000"],
                "announced, but not a supervisor event")
        #expect(render(s.handle(.failedToOpen(epoch: 1, .connect("late"), retryAfter: nil, now: t0))).isEmpty)
        #expect(!s.delivers(1) && s.currentEpoch == 2)
        #expect(s.supervisor.state == .connecting(attempt: 1))
    }

    @Test func subscriptionsWaitForAReplyThatAuthMessageMatches() {
        var s = slots()
        #expect(open(&s, credential(1, message: #"{"token":"t"}"#, ok: "auth_ok", timeout: .seconds(3)))
                == ["opened 1", #"auth 1 {"token":"t"}"#, "authTimer 1 3.0 seconds"])
        #expect(s.awaitsAuthReply(on: 1))
        #expect(render(s.handle(.textReceived(epoch: 1, "AUTH_OK"))).isEmpty, "matched case-sensitively")
        #expect(render(s.handle(.textReceived(epoch: 2, "auth_ok"))).isEmpty, "only the current connection's reply")
        #expect(render(s.handle(.textReceived(epoch: 1, #"{"type":"auth_ok"}"#))) == ["cancelAuthTimer", "subscribe 1"])
        #expect(!s.awaitsAuthReply(on: 1))
        #expect(render(s.handle(.authTimedOut(epoch: 1))).isEmpty, "a timer that fires after the reply does nothing")
    }

    @Test func withoutAReplyTheConnectionIsClosedWith1008AtTheAuthTimeout() {
        var s = slots()
        #expect(open(&s, credential(1, message: "m", ok: "ok")) == ["opened 1", "auth 1 m", "authTimer 1 10.0 seconds"])
        #expect(render(s.handle(.authTimedOut(epoch: 1))) == ["close 1 1008 auth timeout"])
        let closed = s.handle(.closed(epoch: 1, .init(code: 1008, reason: "auth timeout", initiator: .local), now: t0))
        #expect(render(closed).prefix(2) == ["closed 1 1008", "endCurrent"])
        #expect(!s.awaitsAuthReply(on: 1))
    }

    @Test func anAuthMessageWithoutPatternOrNoMessageSubscribesAtOnce() {
        var noPattern = slots()
        #expect(open(&noPattern, credential(1, message: "m")) == ["opened 1", "auth 1 m", "subscribe 1"])
        var header = slots()
        #expect(open(&header, credential(1)) == ["opened 1", "subscribe 1"])
    }

    @Test func rotationPromotesTheSuccessorAndRetiresTheOldConnection() {
        var s = slots(rotate: true)
        let renewAt = WallClockTime(microsecondsSinceEpoch: wall0.microsecondsSinceEpoch + 60_000_000)
        #expect(open(&s, credential(1, renewAt: renewAt)) == ["renewal 1 60.0 seconds", "opened 1", "subscribe 1"])
        #expect(render(s.handle(.renewalDue(epoch: 9, now: t0))).isEmpty, "a stale rotation wake-up")
        #expect(render(s.handle(.renewalDue(epoch: 1, now: t0))) == ["fetch rejected=nil"])
        #expect(render(s.handle(.credentialReady(credential(2), now: t0))) == ["connect 2 gen=2 successor"])
        #expect(s.delivers(1) && !s.delivers(2), "the successor delivers once it is current")
        #expect(render(s.handle(.opened(epoch: 2, now: t0, wallNow: wall0)))
                == ["endCurrent", "opened 2", "close 1 1000 token rotation", "subscribe 2"])
        #expect(s.currentEpoch == 2 && s.delivers(1) && s.delivers(2), "the retiring connection is still delivered")
        #expect(render(s.handle(.closed(epoch: 1, .init(code: 1000, reason: "token rotation", initiator: .local), now: t0)))
                == ["closed 1 1000"])
        #expect(!s.delivers(1))
        #expect(s.supervisor.state == .open(epoch: 2, since: t0))
    }

    @Test func aSecondRotationBeforeTheFirstRetiredKeepsDeliveringBoth() {
        var s = rotating()
        _ = s.handle(.opened(epoch: 2, now: t0, wallNow: wall0))
        // Epoch 1 has not finished its closing handshake when the next rotation opens epoch 3.
        _ = s.handle(.renewalDue(epoch: 2, now: t0))
        #expect(render(s.handle(.credentialReady(credential(3), now: t0))) == ["connect 3 gen=3 successor"])
        let third = render(s.handle(.opened(epoch: 3, now: t0, wallNow: wall0)))
        #expect(!third.contains { $0.hasPrefix("abandon") }, "nothing the server already sent is dropped: \(third)")
        #expect(third.contains("close 2 1000 token rotation"))
        #expect(s.currentEpoch == 3 && s.delivers(1) && s.delivers(2) && s.delivers(3))
        _ = s.handle(.closed(epoch: 1, .init(code: 1000, reason: "token rotation", initiator: .local), now: t0))
        #expect(!s.delivers(1) && s.delivers(2))
        _ = s.handle(.closed(epoch: 2, .init(code: 1000, reason: "token rotation", initiator: .local), now: t0))
        #expect(!s.delivers(2) && s.delivers(3))
    }

    @Test func aRenewAtAlreadyPassedWaitsAtLeastASecond() {
        var s = slots(rotate: true)
        let past = WallClockTime(microsecondsSinceEpoch: wall0.microsecondsSinceEpoch - 5_000_000)
        #expect(open(&s, credential(1, renewAt: past)).first == "renewal 1 1.0 seconds")
    }

    @Test func whenTheOldConnectionEndsDuringARotationTheSuccessorCarriesOn() {
        var s = rotating()
        #expect(render(s.handle(.closed(epoch: 1, .init(code: 1006, reason: "dropped", initiator: .transport), now: t0)))
                == ["closed 1 1006", "endCurrent"])
        #expect(s.currentEpoch == 2)
        #expect(render(s.handle(.opened(epoch: 2, now: t0, wallNow: wall0))) == ["opened 2", "subscribe 2"])
        #expect(s.supervisor.state == .open(epoch: 2, since: t0))
    }

    @Test func aFailedSuccessorLeavesTheCurrentConnectionAlone() {
        var s = rotating()
        #expect(render(s.handle(.failedToOpen(epoch: 2, .connect("refused"), retryAfter: nil, now: t0))) == ["timer"])
        #expect(s.currentEpoch == 1 && s.delivers(1))
    }

    @Test func keepaliveDeathAbortsTheCurrentConnectionOnly() {
        var s = slots(auth: nil)
        _ = s.handle(.supervisor(.start(now: t0)))
        _ = s.handle(.credentialReady(nil, now: t0))
        _ = s.handle(.opened(epoch: 1, now: t0, wallNow: wall0))
        #expect(render(s.handle(.keepaliveDead(epoch: 7, .pongTimeout(.seconds(5)), now: t0))).isEmpty)
        #expect(render(s.handle(.keepaliveDead(epoch: 1, .pongTimeout(.seconds(5)), now: t0)))
                == ["abort 1 1001 no pong within 5s", "abort 1 1001 connection abandoned", "timer"])
    }

    @Test func finishingForgetsEveryConnectionAndAbandonsTheSuccessor() {
        var s = rotating()
        #expect(render(s.handle(.supervisor(.shutdown(now: t0))))
                == ["abandon 2 connection abandoned", "close 1 1001 going away", "timer"])
        #expect(render(s.handle(.closed(epoch: 1, .init(code: 1001, reason: "going away", initiator: .local), now: t0)))
                == ["closed 1 1001", "endCurrent", "cancelTimer", "endCurrent", "finished"])
        #expect(s.currentEpoch == nil)
    }
    @Test func aShutdownRightAfterARotationFinishesOnlyWhenTheRetiringConnectionHasClosed() {
        var s = rotating()
        _ = s.handle(.opened(epoch: 2, now: t0, wallNow: wall0))
        #expect(render(s.handle(.supervisor(.shutdown(now: t0)))) == ["close 2 1001 going away", "timer"])
        let currentClosed = render(s.handle(.closed(epoch: 2, .init(code: 1001, reason: "going away", initiator: .local), now: t0)))
        #expect(!currentClosed.contains("finished") && !currentClosed.contains("forget 1"),
                "epoch 1 is still in its closing handshake: \(currentClosed)")
        #expect(s.delivers(1), "what the server sent before it saw our close is still delivered")
        #expect(render(s.handle(.closed(epoch: 1, .init(code: 1000, reason: "token rotation", initiator: .local), now: t0)))
                == ["closed 1 1000", "finished"])
        #expect(!s.delivers(1))
    }
}
