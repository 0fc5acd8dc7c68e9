import Testing
@testable import WSRelayCore

@Suite("SubscriberQueue")
struct SubscriberQueueTests {
    @Test func disconnectWhenARunWouldOverflow() {
        var q = SubscriberQueue(limit: 1000, policy: .disconnect)
        do { let result = q.admit(999); #expect(result == .accepted) }
        #expect(q.fits(1))
        do { let result = q.admit(1); #expect(result == .accepted) }
        #expect(!q.fits(1))
        do { let result = q.admit(1); #expect(result == .disconnect) }
        #expect(q.isDisconnected)
        do { let result = q.admit(1); #expect(result == .dropped) }
        do { let result = q.completed(1000); #expect(result == nil) }
        #expect(!q.fits(1))
    }

    @Test func aRunLargerThanTheQueueIsAcceptedWhenEmpty() {
        var q = SubscriberQueue(limit: 100, policy: .disconnect)
        #expect(q.fits(5000))
        do { let result = q.admit(5000); #expect(result == .accepted) }
        do { let result = q.admit(1); #expect(result == .disconnect) }
    }

    @Test func dropHoldsUntilLowWaterThenReportsGaps() {
        var q = SubscriberQueue(limit: 1000, policy: .drop)
        do { let result = q.admit(800); #expect(result == .accepted) }
        do { let result = q.admit(300); #expect(result == .dropped) }
        q.recordDrop(upstream: 1, seq: 40)
        do { let result = q.admit(10); #expect(result == .dropped) }  // still in the episode
        q.recordDrop(upstream: 1, seq: 41)
        do { let result = q.completed(200); #expect(result == nil) }   // 600 > 500
        do { let result = q.completed(100); #expect(result == [.init(upstream: 1, dropped: 2, firstSeq: 40, lastSeq: 41)]) }
        #expect(q.totalDropped == 2)
        do { let result = q.admit(10); #expect(result == .accepted) }
        #expect(q.queued == 510)
    }

    @Test func repliesAreNeverRefused() {
        var q = SubscriberQueue(limit: 10, policy: .disconnect)
        do { let result = q.admit(10); #expect(result == .accepted) }
        q.admitUnconditionally(50)
        #expect(q.queued == 60)
        #expect(!q.isDisconnected)
        do { let result = q.completed(60); #expect(result == nil) }
        #expect(q.queued == 0)
    }

    @Test func gapsAreReportedEvenAfterAFullDrain() {
        var q = SubscriberQueue(limit: 100, policy: .drop)
        do { let result = q.admit(100); #expect(result == .accepted) }
        do { let result = q.admit(1); #expect(result == .dropped) }
        q.recordDrop(upstream: 0, seq: 1)
        do { let result = q.completed(100); #expect(result == [.init(upstream: 0, dropped: 1, firstSeq: 1, lastSeq: 1)]) }
        do { let result = q.completed(0); #expect(result == nil) }
    }
}
