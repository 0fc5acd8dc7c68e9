import Testing
@testable import WSRelayCore

@Suite("UpstreamState")
struct UpstreamStateTests {
    @Test func phaseStrings() {
        #expect(UpstreamState.Phase.connecting.description == "connecting")
        #expect(UpstreamState.Phase.open.description == "open")
        #expect(UpstreamState.Phase.backingOff.description == "backing off")
        #expect(UpstreamState.Phase.refreshingCredentials.description == "refreshing credentials")
        #expect(UpstreamState.Phase.paused.description == "paused")
        #expect(UpstreamState.Phase.stopped.description == "stopped")
    }

    @Test(arguments: [
        (Duration.seconds(10), "10s"),
        (.milliseconds(250), "250ms"),
        (.milliseconds(1500), "1.5s"),
        (.milliseconds(1234), "1.234s"),
        (.seconds(60), "60s"),
        (.seconds(119), "119s"),
        (.seconds(120), "2m"),
        (.seconds(150), "2m30s"),
        (.seconds(3600), "1h"),
        (.zero, "0s"),
        (.microseconds(20), "20µs"),
    ])
    func durationText(_ duration: Duration, _ text: String) {
        #expect(UpstreamState.describe(duration) == text)
    }

    @Test func shellFillsTrafficFields() {
        let now = ContinuousClock.now
        var state = UpstreamState(name: "a", phase: .open, since: now)
        state.messages = 3
        state.bytes = 300
        state.lastMessageAt = now
        state.lastPongRTT = .milliseconds(12)
        #expect(state.messages == 3 && state.lastPongRTT == .milliseconds(12))
    }
}
