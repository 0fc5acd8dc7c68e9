import Testing
@testable import WSRelayCore

@Suite("SinkQueueStateMachine: file buffer (block, drop)")
struct SinkFileBufferStateMachineTests {
    typealias M = SinkQueueStateMachine

    @Test func blockPausesAtCapacityOnceAndResumesAtLowWater() {
        var m = M(capacity: 1000, policy: .block)
        #expect(m.lowWater == 500)
        do { let result = m.admit(600); #expect(result == .accepted) }
        do { let result = m.admit(399); #expect(result == .accepted) }
        do { let result = m.admit(1); #expect(result == .acceptedAndPause) }
        #expect(m.pausing)
        // Upstreams had more in flight: still accepted, no second pause.
        do { let result = m.admit(300); #expect(result == .accepted) }
        #expect(m.buffered == 1300)
        do { let result = m.written(700); #expect(result == .none) }       // 600 left, above low water
        do { let result = m.written(100); #expect(result == .resume) }     // 500: at low water
        #expect(!m.pausing)
        do { let result = m.written(100); #expect(result == .none) }
        #expect(m.totalDropped == 0)
    }

    @Test func blockNeverDrops() {
        var m = M(capacity: 10, policy: .block)
        for _ in 0..<100 { #expect(m.admit(100) != .dropped) }
        #expect(m.fits(1_000_000))
        #expect(m.buffered == 10_000)
    }

    @Test func dropCountsPerUpstreamAndReportsGapsAtLowWater() {
        var m = M(capacity: 1000, policy: .drop)
        do { let result = m.admit(900); #expect(result == .accepted) }
        #expect(!m.fits(200))
        do { let result = m.admit(200); #expect(result == .dropped) }
        m.recordDrop(upstream: 0, seq: 10)
        #expect(m.dropping)
        // Everything is dropped in the episode, even what would fit.
        do { let result = m.admit(1); #expect(result == .dropped) }
        m.recordDrop(upstream: 0, seq: 11)
        m.recordDrop(upstream: 1, seq: 500)
        do { let result = m.written(300); #expect(result == .none) }   // 600 > 500
        do { let result = m.admit(1); #expect(result == .dropped) }
        m.recordDrop(upstream: 0, seq: 12)
        let action = m.written(100)        // 500: recovered
        #expect(action == .writeGaps([
            .init(upstream: 0, dropped: 3, firstSeq: 10, lastSeq: 12),
            .init(upstream: 1, dropped: 1, firstSeq: 500, lastSeq: 500),
        ]))
        #expect(!m.dropping)
        #expect(m.totalDropped == 4)
        do { let result = m.admit(100); #expect(result == .accepted) }
        #expect(m.gaps.isEmpty)
    }

    @Test func oversizedMessageIsAcceptedIntoAnEmptyBuffer() {
        var m = M(capacity: 100, policy: .drop)
        #expect(m.fits(1000))
        do { let result = m.admit(1000); #expect(result == .accepted) }
        do { let result = m.admit(1); #expect(result == .dropped) }
    }

    @Test func unconditionalRecordsCountButAreNeverRefused() {
        var m = M(capacity: 100, policy: .drop)
        do { let result = m.admit(100); #expect(result == .accepted) }
        m.admitUnconditionally(50)
        #expect(m.buffered == 150)
        do { let result = m.written(150); #expect(result == .none) }
    }
}

@Suite("WriteErrorEpisode")
struct SinkWriteErrorEpisodeTests {
    let t0 = ContinuousClock.now

    @Test func backoffDoublesFrom100msTo5s() {
        let e = WriteErrorEpisode()
        let delays = (1...9).map { e.delay(afterFailures: $0) }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                           .milliseconds(1600), .milliseconds(3200), .seconds(5), .seconds(5), .seconds(5)])
    }

    @Test func logsOncePerEpisodeAndReportsRecovery() {
        var e = WriteErrorEpisode()
        #expect(e.mayRetry(now: t0))
        do { let result = e.succeeded(now: t0); #expect(result == nil) }
        do { let result = e.failed("write: ENOSPC", now: t0); #expect(result) }
        #expect(!e.mayRetry(now: t0 + .milliseconds(99)))
        #expect(e.mayRetry(now: t0 + .milliseconds(100)))
        do { let result = e.failed("write: ENOSPC", now: t0 + .milliseconds(100)); #expect(!result) }
        #expect(e.retryAt == t0 + .milliseconds(300))
        do { let result = e.failed("write: EIO", now: t0 + .milliseconds(300)); #expect(!result) }
        let recovery = e.succeeded(now: t0 + .seconds(2))
        #expect(recovery == .init(duration: .seconds(2), failures: 3, lastError: "write: EIO"))
        #expect(!e.isActive)
        do { let result = e.failed("again", now: t0 + .seconds(3)); #expect(result) }
        #expect(e.retryAt == t0 + .seconds(3) + .milliseconds(100))
    }
}

@Suite("GapCounter")
struct SinkGapCounterTests {
    @Test func tracksRangesPerUpstreamInFirstDropOrder() {
        var g = GapCounter()
        g.record(upstream: 2, seq: 9)
        g.record(upstream: 0, seq: 5)
        g.record(upstream: 2, seq: 7)
        g.record(upstream: 2, seq: 12)
        #expect(g.total == 4)
        let taken = g.take()
        #expect(taken == [.init(upstream: 2, dropped: 3, firstSeq: 7, lastSeq: 12),
                          .init(upstream: 0, dropped: 1, firstSeq: 5, lastSeq: 5)])
        #expect(g.isEmpty)
    }
}
