import Testing
@testable import WSRelayCore

/// Suspend/resume and wall-clock steps from given clock readings; the stop-timeout extension; the keepalive's
/// immediate ping.
@Suite("clock jumps, stop timeout extension, ping now")
struct ClockJumpTests {
    typealias R = ClockJumpDetector.Reading

    @Test func suspendIsBoottimeRunningAheadOfMonotonic() {
        var detector = ClockJumpDetector()
        #expect(detector.observe(R(monotonic: .seconds(100), boottime: .seconds(200), realtime: .seconds(1_000))) == [])
        // One ordinary second: nothing.
        #expect(detector.observe(R(monotonic: .seconds(101), boottime: .seconds(201), realtime: .seconds(1_001))) == [])
        // Slept 300 s: boottime and realtime went on, monotonic did not.
        #expect(detector.observe(R(monotonic: .seconds(102), boottime: .seconds(502), realtime: .seconds(1_302)))
                == [.resumed(suspended: .seconds(300))])
        // Scheduling jitter below the threshold is not a suspend.
        #expect(detector.observe(R(monotonic: .seconds(103), boottime: .milliseconds(503_500), realtime: .milliseconds(1_303_500))) == [])
    }

    @Test func wallClockStepsEitherWay() {
        var detector = ClockJumpDetector()
        _ = detector.observe(R(monotonic: .seconds(10), boottime: .seconds(10), realtime: .seconds(5_000)))
        #expect(detector.observe(R(monotonic: .seconds(11), boottime: .seconds(11), realtime: .seconds(8_601)))
                == [.wallClockStepped(by: .seconds(3_600))])
        #expect(detector.observe(R(monotonic: .seconds(12), boottime: .seconds(12), realtime: .seconds(8_572)))
                == [.wallClockStepped(by: .seconds(-30))])
        // A suspend moves realtime with boottime: a resume, not a step. Both at once are both reported.
        #expect(detector.observe(R(monotonic: .seconds(13), boottime: .seconds(73), realtime: .seconds(8_633)))
                == [.resumed(suspended: .seconds(60))])
        #expect(detector.observe(R(monotonic: .seconds(14), boottime: .seconds(134), realtime: .seconds(9_000)))
                == [.resumed(suspended: .seconds(60)), .wallClockStepped(by: .seconds(306))])
    }

    @Test func stopIsExtendedOnlyWhileTheDrainProgresses() {
        var extender = StopTimeoutExtension(interval: .seconds(1))
        #expect(extender.observe(remaining: 1_000) == nil, "no progress seen yet")
        #expect(extender.observe(remaining: 600) == .seconds(3))
        #expect(extender.observe(remaining: 600) == nil, "stuck: let the stop timeout run")
        #expect(extender.observe(remaining: 100) == .seconds(3))
        #expect(extender.observe(remaining: 0) == nil, "done")
    }

    @Test func pingNowPingsAtOnceAndRestartsTheSchedule() {
        let t0 = ContinuousClock.now
        var keepalive = KeepaliveStateMachine(settings: .init(pingInterval: .seconds(30), pongTimeout: .seconds(10)))
        #expect(keepalive.handle(.pingNow(now: t0)).actions.isEmpty, "not open yet")
        _ = keepalive.handle(.opened(now: t0))
        let output = keepalive.handle(.pingNow(now: t0 + .seconds(5)))
        #expect(output.actions == [.sendPing(payload: KeepaliveStateMachine.pingPayload(counter: 1))])
        #expect(output.nextDeadline == t0 + .seconds(15), "the pong deadline of the immediate ping")
        _ = keepalive.handle(.pongReceived(payload: KeepaliveStateMachine.pingPayload(counter: 1), now: t0 + .seconds(6)))
        #expect(keepalive.nextDeadline == t0 + .seconds(35), "next ping one interval after the immediate one")
        var off = KeepaliveStateMachine(settings: .init(pingInterval: .zero))
        _ = off.handle(.opened(now: t0))
        #expect(off.handle(.pingNow(now: t0)).actions.isEmpty, "pings disabled stay disabled")
    }
}
