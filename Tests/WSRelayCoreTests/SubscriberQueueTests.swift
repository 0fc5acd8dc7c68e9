import NIOCore
import Testing
@testable import WSRelayCore

@Suite("SinkQueueStateMachine: subscriber queue (disconnect, drop)")
struct SubscriberQueueTests {
    @Test func disconnectWhenARunWouldOverflow() {
        var q = SinkQueueStateMachine(capacity: 1000, policy: .disconnect)
        do { let result = q.admit(999); #expect(result == .accepted) }
        #expect(q.fits(1))
        do { let result = q.admit(1); #expect(result == .accepted) }
        #expect(!q.fits(1))
        do { let result = q.admit(1); #expect(result == .disconnect) }
        #expect(q.isDisconnected)
        do { let result = q.admit(1); #expect(result == .dropped) }
        do { let result = q.written(1000); #expect(result == .none) }
        #expect(!q.fits(1))
    }

    @Test func aRunLargerThanTheQueueIsAcceptedWhenEmpty() {
        var q = SinkQueueStateMachine(capacity: 100, policy: .disconnect)
        #expect(q.fits(5000))
        do { let result = q.admit(5000); #expect(result == .accepted) }
        do { let result = q.admit(1); #expect(result == .disconnect) }
    }

    @Test func dropHoldsUntilLowWaterThenReportsGaps() {
        var q = SinkQueueStateMachine(capacity: 1000, policy: .drop)
        do { let result = q.admit(800); #expect(result == .accepted) }
        do { let result = q.admit(300); #expect(result == .dropped) }
        q.recordDrop(upstream: 1, seq: 40)
        do { let result = q.admit(10); #expect(result == .dropped) }  // still in the episode
        q.recordDrop(upstream: 1, seq: 41)
        do { let result = q.written(200); #expect(result == .none) }   // 600 > 500
        do { let result = q.written(100); #expect(result == .writeGaps([.init(upstream: 1, dropped: 2, firstSeq: 40, lastSeq: 41)])) }
        #expect(q.totalDropped == 2)
        do { let result = q.admit(10); #expect(result == .accepted) }
        #expect(q.buffered == 510)
    }

    @Test func repliesAreNeverRefused() {
        var q = SinkQueueStateMachine(capacity: 10, policy: .disconnect)
        do { let result = q.admit(10); #expect(result == .accepted) }
        q.admitUnconditionally(50)
        #expect(q.buffered == 60)
        #expect(!q.isDisconnected)
        do { let result = q.written(60); #expect(result == .none) }
        #expect(q.buffered == 0)
    }

    @Test func gapsAreReportedEvenAfterAFullDrain() {
        var q = SinkQueueStateMachine(capacity: 100, policy: .drop)
        do { let result = q.admit(100); #expect(result == .accepted) }
        do { let result = q.admit(1); #expect(result == .dropped) }
        q.recordDrop(upstream: 0, seq: 1)
        do { let result = q.written(100); #expect(result == .writeGaps([.init(upstream: 0, dropped: 1, firstSeq: 1, lastSeq: 1)])) }
        do { let result = q.written(0); #expect(result == .none) }
    }
}

/// The batch side of the kit: the one place that cuts an `EncodedBatch` into what a queue takes.
@Suite("SinkQueueStateMachine: batch admission")
struct SinkQueueBatchAdmissionTests {
    /// Lines "m<seq>\n" (messages) or "e\n" (events) of the given upstreams, each 10 bytes long.
    static func batch(_ lines: [(upstream: UInt16, seq: UInt64?)]) -> EncodedBatch {
        var builder = EncodedBatchBuilder(allocator: .init(), capacity: 10 * lines.count, lines: lines.count)
        for line in lines {
            let text = line.seq.map { "m" + String($0) } ?? "e"
            builder.bytes.writeString(text + String(repeating: ".", count: 9 - text.count) + "\n")
            builder.endLine(upstream: line.upstream, isEvent: line.seq == nil, seq: line.seq ?? 0)
        }
        var batches: [EncodedBatch] = []
        builder.forEachBatch { batches.append($0) }
        return batches[0]
    }

    static func admit(_ q: inout SinkQueueStateMachine, _ batch: EncodedBatch, selection: UpstreamSelection = .all,
                      events: Bool = true) -> (SinkQueueStateMachine.BatchOutcome, [String]) {
        var taken: [String] = []
        let outcome = q.admit(batch, selection: selection, events: events) { lines, bytes in
            #expect(lines.readableBytes == bytes)
            taken.append(String(buffer: lines))
        }
        return (outcome, taken)
    }

    @Test func aWhollyWantedBatchThatFitsIsTakenAsOneBuffer() {
        var q = SinkQueueStateMachine(capacity: 1000, policy: .drop)
        let batch = Self.batch([(0, 1), (1, 2), (0, nil)])
        let (outcome, taken) = Self.admit(&q, batch)
        #expect(outcome == .init())
        #expect(taken == [String(buffer: batch.bytes)])
        #expect(q.buffered == 30)
    }

    @Test func selectionCutsRunsAtLineBoundaries() {
        var q = SinkQueueStateMachine(capacity: 1000, policy: .block)
        let batch = Self.batch([(0, 1), (1, 2), (1, 3), (0, 4), (0, nil)])
        let (outcome, taken) = Self.admit(&q, batch, selection: UpstreamSelection(ids: [1]), events: false)
        #expect(outcome == .init())
        #expect(taken == ["m2.......\nm3.......\n"])
        #expect(q.buffered == 20)
    }

    @Test func underDropEventsStayAndDroppedMessagesSplitTheRun() {
        var q = SinkQueueStateMachine(capacity: 25, policy: .drop)
        let (first, _) = Self.admit(&q, Self.batch([(0, 1), (0, 2)]))
        #expect(first == .init() && q.buffered == 20)
        // 20 queued: m3 does not fit and starts a drop episode; the event is kept; m4 is dropped too.
        let (outcome, taken) = Self.admit(&q, Self.batch([(0, 3), (0, nil), (1, 4)]))
        #expect(outcome.dropped == 2 && !outcome.pause && !outcome.disconnect)
        #expect(taken == ["e........\n"])
        #expect(q.totalDropped == 2)
        #expect(q.written(30) == .writeGaps([.init(upstream: 0, dropped: 1, firstSeq: 3, lastSeq: 3),
                                             .init(upstream: 1, dropped: 1, firstSeq: 4, lastSeq: 4)]))
    }

    @Test func underDisconnectAnOverflowingRunEndsItAndNothingAfterIsTaken() {
        var q = SinkQueueStateMachine(capacity: 25, policy: .disconnect)
        _ = Self.admit(&q, Self.batch([(0, 1), (0, 2)]))
        let (outcome, taken) = Self.admit(&q, Self.batch([(0, 3), (1, 4), (0, 5)]),
                                          selection: UpstreamSelection(ids: [0]))
        #expect(outcome.disconnect && outcome.dropped == 0)
        #expect(taken.isEmpty)
        #expect(q.isDisconnected)
    }

    @Test func underBlockAFullQueueAsksForOnePause() {
        var q = SinkQueueStateMachine(capacity: 25, policy: .block)
        let (outcome, taken) = Self.admit(&q, Self.batch([(0, 1), (0, 2), (0, 3)]))
        #expect(outcome.pause && outcome.dropped == 0)
        #expect(taken.count == 1 && q.buffered == 30)
        let (again, _) = Self.admit(&q, Self.batch([(0, 4)]))
        #expect(!again.pause, "already pausing")
        #expect(q.written(30) == .resume)
    }

    /// Event sinks (journal, JetStream): messages cost payload + overhead; records only with `events`.
    @Test func eventAdmissionFiltersCostsAndDrops() {
        let directory = UpstreamDirectory(names: ["a", "b"])
        func message(_ upstream: String, _ seq: UInt64, bytes: Int) -> RelayEvent {
            .message(ReceivedMessage(upstream: upstream, epoch: 1, seq: seq, receivedAt: .now(), kind: .text,
                                     payload: ByteBuffer(repeating: 0x61, count: bytes)))
        }
        let input: [RelayEvent] = [
            .connected(upstream: "a", epoch: 1, at: .now()), message("a", 1, bytes: 40), message("b", 1, bytes: 40),
            message("a", 2, bytes: 40), message("a", 3, bytes: 5),
        ]
        var q = SinkQueueStateMachine(capacity: 100, policy: .drop)
        var kept: [(String, Int)] = []
        let outcome = q.admit(input, selection: UpstreamSelection(names: ["a"], directory: directory), events: false,
                              directory: directory, overhead: 10) { event, cost in kept.append((event.upstream, cost)) }
        // a/1 (50) and a/2 (50) fill the queue; a/3 would not fit and starts the drop episode.
        #expect(kept.map(\.1) == [50, 50] && kept.allSatisfy { $0.0 == "a" })
        #expect(outcome.dropped == 1 && q.totalDropped == 1 && !outcome.pause)
        var withEvents = SinkQueueStateMachine(capacity: 1000, policy: .block)
        var costs: [Int] = []
        _ = withEvents.admit(input, selection: .all, events: true, directory: directory, overhead: 10) { costs.append($1) }
        #expect(costs == [10, 50, 50, 50, 15])
    }

    @Test func gapLinesAreCountedInTheQueue() {
        var q = SinkQueueStateMachine(capacity: 25, policy: .drop)
        let names = UpstreamDirectory(names: ["market"])
        let lines = q.gapLines([.init(upstream: 0, dropped: 3, firstSeq: 7, lastSeq: 9)], names: names)
        #expect(q.buffered == lines.readableBytes)
        let text = String(buffer: lines)
        #expect(text.hasPrefix(#"{"event":"gap","upstream":"market""#) && text.hasSuffix("\n"))
        #expect(text.contains(#""dropped":3"#) && text.contains(#""first_seq":7"#) && text.contains(#""last_seq":9"#))
    }
}
