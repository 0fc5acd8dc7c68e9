import Testing
@testable import WSRelayCore

@Suite("KeepaliveStateMachine")
struct KeepaliveTests {
    typealias K = KeepaliveStateMachine
    let t0 = ContinuousClock.now

    private func machine(
        interval: Duration = .seconds(30),
        timeout: Duration = .seconds(10),
        appPing: String? = nil,
        idle: Duration? = nil
    ) -> K {
        K(settings: .init(pingInterval: interval, pongTimeout: timeout, appPing: appPing, idleTimeout: idle))
    }

    private func at(_ seconds: Double) -> ContinuousClock.Instant {
        t0 + .milliseconds(Int64(seconds * 1000))
    }

    @Test func payloadIsWsrPlusCounter() {
        #expect(K.pingPayload(counter: 1) == [0x77, 0x73, 0x72, 0, 0, 0, 0, 1])
        #expect(K.pingPayload(counter: 0x01_0203_0405) == [0x77, 0x73, 0x72, 1, 2, 3, 4, 5])
        #expect(K.pingPayload(counter: 7).count == 8)
    }

    @Test func pingsGoOutAtExactIntervalTimes() {
        var k = machine()
        #expect(k.handle(.opened(now: t0)) == .init(nextDeadline: at(30)))
        for n in 1...5 {
            let sendAt = at(Double(30 * n))
            let fired = k.handle(.timerFired(now: sendAt))
            #expect(fired.actions == [.sendPing(payload: K.pingPayload(counter: UInt64(n)))])
            #expect(fired.nextDeadline == at(Double(30 * n + 10)))  // the pong deadline comes first
            let pong = k.handle(.pongReceived(payload: K.pingPayload(counter: UInt64(n)), now: sendAt + .milliseconds(250)))
            #expect(pong.actions == [.recordRTT(.milliseconds(250))])
            #expect(pong.nextDeadline == at(Double(30 * (n + 1))))
        }
        #expect(k.pingsSent == 5)
    }

    @Test func dataTrafficDoesNotDelayPings() {
        var k = machine()
        _ = k.handle(.opened(now: t0))
        #expect(k.handle(.frameReceived(now: at(10))).nextDeadline == at(30))
        #expect(k.handle(.frameReceived(now: at(29.9))).nextDeadline == at(30))
        #expect(k.handle(.timerFired(now: at(30))).actions.count == 1)
    }

    @Test func deadAfterIntervalPlusTimeoutWithoutPong() {
        var k = machine()
        _ = k.handle(.opened(now: t0))
        _ = k.handle(.timerFired(now: at(30)))
        // Data still flowing does not excuse a missing pong.
        _ = k.handle(.frameReceived(now: at(35)))
        let early = k.handle(.timerFired(now: at(39.999)))
        #expect(early.actions.isEmpty)
        #expect(early.nextDeadline == at(40))
        let dead = k.handle(.timerFired(now: at(40)))
        #expect(dead == .init(actions: [.declareDead(reason: .pongTimeout(.seconds(10)))], nextDeadline: nil))
        #expect(K.DeathReason.pongTimeout(.seconds(10)).description == "no pong within 10s")
        #expect(k.isDead)
    }

    @Test func unmatchedPongIsIgnored() {
        var k = machine()
        _ = k.handle(.opened(now: t0))
        _ = k.handle(.timerFired(now: at(30)))
        for payload in [[], [1, 2, 3], K.pingPayload(counter: 2), Array("wsr\0\0\0\0\0".utf8)] as [[UInt8]] {
            let out = k.handle(.pongReceived(payload: payload, now: at(31)))
            #expect(out.actions.isEmpty)
            #expect(out.nextDeadline == at(40))
        }
        #expect(k.handle(.timerFired(now: at(40))).actions == [.declareDead(reason: .pongTimeout(.seconds(10)))])
    }

    @Test func unsolicitedPongBeforeAnyPingIsIgnored() {
        var k = machine()
        _ = k.handle(.opened(now: t0))
        let out = k.handle(.pongReceived(payload: K.pingPayload(counter: 1), now: at(5)))
        #expect(out.actions.isEmpty)
        #expect(out.nextDeadline == at(30))
    }

    @Test func stalePongIsIgnoredAndRTTRecordedOnce() {
        var k = machine()
        _ = k.handle(.opened(now: t0))
        _ = k.handle(.timerFired(now: at(30)))
        #expect(k.handle(.pongReceived(payload: K.pingPayload(counter: 1), now: at(31.5))).actions == [.recordRTT(.milliseconds(1500))])
        #expect(k.handle(.pongReceived(payload: K.pingPayload(counter: 1), now: at(32))).actions.isEmpty)
    }

    @Test func pongToNewestPingAnswersOlderOnes() {
        // Timeout longer than the interval: two pings can be outstanding.
        var k = machine(interval: .seconds(5), timeout: .seconds(12))
        _ = k.handle(.opened(now: t0))
        _ = k.handle(.timerFired(now: at(5)))
        let second = k.handle(.timerFired(now: at(10)))
        #expect(second.actions == [.sendPing(payload: K.pingPayload(counter: 2))])
        #expect(second.nextDeadline == at(15))  // next ping; the oldest pong deadline is 17
        let pong = k.handle(.pongReceived(payload: K.pingPayload(counter: 2), now: at(11)))
        #expect(pong.actions == [.recordRTT(.seconds(1))])
        #expect(pong.nextDeadline == at(15))
        _ = k.handle(.timerFired(now: at(15)))
        #expect(k.nextDeadline == at(20))
        _ = k.handle(.timerFired(now: at(20)))
        #expect(k.nextDeadline == at(25))
        // Ping 3 (sent at 15) unanswered: dead at 27, even though pings continue.
        _ = k.handle(.timerFired(now: at(25)))
        #expect(k.nextDeadline == at(27))
        #expect(k.handle(.timerFired(now: at(27))).actions == [.declareDead(reason: .pongTimeout(.seconds(12)))])
    }

    @Test func lateWakeUpSkipsMissedSlotsAndStaysOnTheGrid() {
        var k = machine(timeout: .seconds(100))
        _ = k.handle(.opened(now: t0))
        _ = k.handle(.timerFired(now: at(30)))
        _ = k.handle(.pongReceived(payload: K.pingPayload(counter: 1), now: at(30.1)))
        let late = k.handle(.timerFired(now: at(95)))
        #expect(late.actions == [.sendPing(payload: K.pingPayload(counter: 2))])
        _ = k.handle(.pongReceived(payload: K.pingPayload(counter: 2), now: at(95.1)))
        #expect(k.nextDeadline == at(120))
    }

    @Test func earlyTimerDoesNothing() {
        var k = machine()
        _ = k.handle(.opened(now: t0))
        let out = k.handle(.timerFired(now: at(29)))
        #expect(out == .init(actions: [], nextDeadline: at(30)))
    }

    @Test func appPingFollowsEachProtocolPing() {
        var k = machine(appPing: #"{"op":"ping"}"#)
        _ = k.handle(.opened(now: t0))
        #expect(k.handle(.timerFired(now: at(30))).actions == [
            .sendPing(payload: K.pingPayload(counter: 1)),
            .sendAppPing(#"{"op":"ping"}"#),
        ])
    }

    @Test func pingsOffWithZeroInterval() {
        var k = machine(interval: .zero, appPing: "ping")
        #expect(k.handle(.opened(now: t0)).nextDeadline == nil)
        #expect(k.handle(.frameReceived(now: at(100))).nextDeadline == nil)
        #expect(k.handle(.timerFired(now: at(1000))).actions.isEmpty)
    }

    @Test func idleTimeoutWhenNoFrameArrives() {
        var k = machine(interval: .zero, idle: .seconds(60))
        #expect(k.handle(.opened(now: t0)).nextDeadline == at(60))
        #expect(k.handle(.frameReceived(now: at(30))).nextDeadline == at(90))
        #expect(k.handle(.timerFired(now: at(60))).actions.isEmpty)  // stale timer
        let dead = k.handle(.timerFired(now: at(90)))
        #expect(dead == .init(actions: [.declareDead(reason: .idleTimeout(.seconds(60)))], nextDeadline: nil))
        #expect(K.DeathReason.idleTimeout(.seconds(60)).description == "no frame for 60s")
    }

    @Test func pongsCountAsFramesForIdle() {
        var k = machine(interval: .seconds(30), timeout: .seconds(10), idle: .seconds(45))
        _ = k.handle(.opened(now: t0))
        _ = k.handle(.timerFired(now: at(30)))
        let pong = k.handle(.pongReceived(payload: K.pingPayload(counter: 1), now: at(31)))
        #expect(pong.nextDeadline == at(60))  // next ping before idle (76)
        _ = k.handle(.timerFired(now: at(60)))
        _ = k.handle(.pongReceived(payload: K.pingPayload(counter: 2), now: at(61)))
        #expect(k.nextDeadline == at(90))
        #expect(k.isDead == false)
    }

    @Test func idleAndPingsTogetherWithNoAnswers() {
        var k = machine(interval: .seconds(30), timeout: .seconds(10), idle: .seconds(35))
        #expect(k.handle(.opened(now: t0)).nextDeadline == at(30))
        #expect(k.handle(.timerFired(now: at(30))).nextDeadline == at(35))  // idle before pong deadline
        #expect(k.handle(.timerFired(now: at(35))).actions == [.declareDead(reason: .idleTimeout(.seconds(35)))])
    }

    @Test func eventsBeforeOpenAndAfterDeathAreIgnored() {
        var k = machine()
        #expect(k.handle(.timerFired(now: t0)) == .init(nextDeadline: nil))
        #expect(k.handle(.pongReceived(payload: K.pingPayload(counter: 1), now: t0)) == .init(nextDeadline: nil))
        _ = k.handle(.opened(now: t0))
        _ = k.handle(.timerFired(now: at(30)))
        _ = k.handle(.timerFired(now: at(40)))
        #expect(k.isDead)
        #expect(k.handle(.pongReceived(payload: K.pingPayload(counter: 1), now: at(41))) == .init(nextDeadline: nil))
        #expect(k.handle(.timerFired(now: at(60))) == .init(nextDeadline: nil))
        #expect(k.handle(.opened(now: at(70))) == .init(nextDeadline: nil))
    }

    @Test func settingsFromUpstream() {
        var u = UpstreamFixtures.settings()
        u.pingInterval = .seconds(15)
        u.pongTimeout = .seconds(5)
        u.appPing = "hb"
        u.idleTimeout = .seconds(120)
        #expect(K.Settings(u) == .init(pingInterval: .seconds(15), pongTimeout: .seconds(5), appPing: "hb", idleTimeout: .seconds(120)))
    }
}
