import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import WSRelayCore

/// A line sink that records what the router hands it.
final class SinkRecordingLineSink: LineSink, Sendable {
    let format: SinkFormat
    let selection: UpstreamSelection
    let wantsEvents: Bool
    let batches = NIOLockedValueBox<[EncodedBatch]>([])

    init(format: SinkFormat, selection: UpstreamSelection = .all, events: Bool = false) {
        self.format = format
        self.selection = selection
        self.wantsEvents = events
    }

    func enqueue(_ batch: EncodedBatch) { batches.withLockedValue { $0.append(batch) } }

    /// What this sink would write: only its lines.
    var text: String {
        batches.withLockedValue { batches in
            batches.map { batch in
                var out = ""
                batch.forEachRun(selection: selection, events: wantsEvents) { run in out += String(buffer: batch.slice(run)) }
                return out
            }.joined()
        }
    }
}

@Suite("MessageRouter and EncodedBatch")
struct SinkRouterTests {
    static let t = WallClockTime(microsecondsSinceEpoch: 1_795_255_200_000_000)

    static func msg(_ upstream: String, _ seq: UInt64, _ text: String) -> RelayEvent {
        .message(ReceivedMessage(upstream: upstream, epoch: 1, seq: seq, receivedAt: t, kind: .text, payload: ByteBuffer(string: text)))
    }

    @Test func encodesOncePerFormatAndSharesTheBuffer() {
        let directory = UpstreamDirectory(names: ["a", "b"])
        let e1 = SinkRecordingLineSink(format: .envelope)
        let e2 = SinkRecordingLineSink(format: .envelope)
        let r1 = SinkRecordingLineSink(format: .raw)
        let router = MessageRouter(directory: directory, lineSinks: [e1, e2, r1], eventSinks: [])
        router.deliver([Self.msg("a", 1, "x"), Self.msg("b", 2, "y")])
        let b1 = e1.batches.withLockedValue { $0 }
        let b2 = e2.batches.withLockedValue { $0 }
        #expect(b1.count == 1 && b2.count == 1)
        let p1 = b1[0].bytes.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let p2 = b2[0].bytes.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        #expect(p1 == p2, "both envelope sinks get the same storage")
        #expect(b1[0].entries.count == 2)
        #expect(r1.text == "x\ny\n")
    }

    /// A read burst of 64 × 4 KiB is just over 256 KiB of raw lines; one buffer for it would be rounded up
    /// to 512 KiB, and a sink holding it would pin twice what it counts against its `buffer`.
    @Test(arguments: [(64, 4096), (16, 4096), (700, 100), (3, 100_000), (1, 1)])
    func rawBatchBuffersUseUpTheirCapacity(messages: Int, size: Int) {
        let directory = UpstreamDirectory(names: ["a"])
        let raw = SinkRecordingLineSink(format: .raw)
        let router = MessageRouter(directory: directory, lineSinks: [raw], eventSinks: [])
        let payload = String(repeating: "x", count: size)
        router.deliver((1...messages).map { Self.msg("a", UInt64($0), payload) })
        let batches = raw.batches.withLockedValue { $0 }
        let lineBytes = messages * (size + 1)
        #expect(batches.reduce(0) { $0 + $1.bytes.readableBytes } == lineBytes)
        #expect(batches.reduce(0) { $0 + $1.entries.count } == messages)
        let capacity = batches.reduce(0) { $0 + $1.bytes.capacity }
        #expect(capacity <= lineBytes + lineBytes / 4 + EncodedBatchBuilder.slack + size,
                "\(batches.count) buffers with \(capacity) bytes of capacity for \(lineBytes) bytes of lines")
        #expect(raw.text == String(repeating: payload + "\n", count: messages))
    }

    @Test func filtersByUpstreamAndSlicesAtLineBoundaries() {
        let directory = UpstreamDirectory(names: ["a", "b", "c"])
        let onlyB = SinkRecordingLineSink(format: .raw, selection: UpstreamSelection(names: ["b"], directory: directory))
        let all = SinkRecordingLineSink(format: .raw)
        let router = MessageRouter(directory: directory, lineSinks: [onlyB, all], eventSinks: [])
        router.deliver([Self.msg("a", 1, "a1"), Self.msg("b", 1, "b1"), Self.msg("b", 2, "b2"), Self.msg("c", 1, "c1"), Self.msg("b", 3, "b3")])
        #expect(onlyB.text == "b1\nb2\nb3\n")
        #expect(all.text == "a1\nb1\nb2\nc1\nb3\n")
        var runs: [Range<Int>] = []
        onlyB.batches.withLockedValue { $0[0] }.forEachRun(selection: onlyB.selection, events: false) { runs.append($0) }
        #expect(runs == [1..<3, 4..<5])
    }

    @Test func nothingIsEncodedForUpstreamsNoSinkTakes() {
        let directory = UpstreamDirectory(names: ["a", "b"])
        let onlyA = SinkRecordingLineSink(format: .envelope, selection: UpstreamSelection(names: ["a"], directory: directory))
        let router = MessageRouter(directory: directory, lineSinks: [onlyA], eventSinks: [])
        router.deliver([Self.msg("b", 1, "b1")])
        #expect(onlyA.batches.withLockedValue { $0.isEmpty })
    }

    @Test func eventsOnlyForSinksThatAskForThem() {
        let directory = UpstreamDirectory(names: ["a"])
        let withEvents = SinkRecordingLineSink(format: .envelope, events: true)
        let without = SinkRecordingLineSink(format: .envelope)
        let router = MessageRouter(directory: directory, lineSinks: [withEvents, without], eventSinks: [])
        router.deliver([.connected(upstream: "a", epoch: 2, at: Self.t), Self.msg("a", 1, "x"),
                        .disconnected(upstream: "a", epoch: 2, code: 1006, reason: "", at: Self.t)])
        #expect(withEvents.text.split(separator: "\n").count == 3)
        #expect(withEvents.text.hasPrefix(#"{"event":"connected","upstream":"a","epoch":2,"#))
        #expect(without.text.split(separator: "\n").count == 1)
        #expect(without.text.hasPrefix(#"{"upstream":"a","#))
    }

    @Test func unknownUpstreamsGoToSinksThatTakeAll() {
        let directory = UpstreamDirectory(names: ["a"])
        let onlyA = SinkRecordingLineSink(format: .raw, selection: UpstreamSelection(names: ["a"], directory: directory))
        let all = SinkRecordingLineSink(format: .raw)
        let router = MessageRouter(directory: directory, lineSinks: [onlyA, all], eventSinks: [])
        router.deliver([Self.msg("new", 1, "n1"), Self.msg("a", 1, "a1")])
        #expect(onlyA.text == "a1\n")
        #expect(all.text == "n1\na1\n")
        #expect(directory.snapshot.id(of: "new") == 1)
    }

    @Test func selectionsIntersect() {
        let a = UpstreamSelection(ids: [0, 2, 70])
        #expect(a.contains(70) && !a.contains(1) && !a.contains(500))
        #expect(UpstreamSelection.all.intersection(a) == a)
        #expect(a.intersection(UpstreamSelection(ids: [2, 3])).ids == [2])
        #expect(UpstreamSelection.all.contains(9999))
    }

    @Test func wholeBatchFastPathNeedsEveryUpstreamAndEventRule() {
        var builder = EncodedBatchBuilder(allocator: .init(), capacity: 16, lines: 2)
        builder.bytes.writeString("x\n")
        builder.endLine(upstream: 1, isEvent: false, seq: 1)
        builder.bytes.writeString("y\n")
        builder.endLine(upstream: 65, isEvent: true, seq: 0)
        var batches: [EncodedBatch] = []
        builder.forEachBatch { batches.append($0) }
        #expect(batches.count == 1)
        let batch = batches[0]
        #expect(batch.isWhollyWanted(by: .all, events: true))
        #expect(!batch.isWhollyWanted(by: .all, events: false))
        #expect(!batch.isWhollyWanted(by: UpstreamSelection(ids: [1, 65]), events: true), "ids >= 64 take the slow path")
        var runs: [Range<Int>] = []
        batch.forEachRun(selection: UpstreamSelection(ids: [1, 65]), events: true) { runs.append($0) }
        #expect(runs == [0..<2])
        #expect(String(buffer: batch.slice(1..<2)) == "y\n")
    }
}

/// Records pause/resume calls.
final class SinkFakeFlowControl: UpstreamFlowControl, Sendable {
    let calls = NIOLockedValueBox<[String]>([])
    func pause(by token: ObjectIdentifier) { calls.withLockedValue { $0.append("pause") } }
    func resume(by token: ObjectIdentifier) { calls.withLockedValue { $0.append("resume") } }
    var isPaused: Bool { calls.withLockedValue { $0.last == "pause" } }
}

@Suite("FlowControlRegistry")
struct SinkFlowControlRegistryTests {
    final class Token {}

    @Test func pausesMatchingUpstreamsIncludingLateRegistrations() {
        let directory = UpstreamDirectory(names: ["a", "b", "c"])
        let registry = FlowControlRegistry(directory: directory)
        let ab = UpstreamSelection(names: ["a", "b"], directory: directory)
        let a = SinkFakeFlowControl()
        let b = SinkFakeFlowControl()
        registry.register(upstream: "a", flowControl: a)
        let token = Token()
        registry.pause(by: ObjectIdentifier(token), upstreams: ab)
        registry.pause(by: ObjectIdentifier(token), upstreams: ab)  // idempotent
        #expect(a.calls.withLockedValue { $0 } == ["pause"])
        registry.register(upstream: "b", flowControl: b)
        #expect(b.isPaused)
        let other = SinkFakeFlowControl()
        registry.register(upstream: "c", flowControl: other)
        #expect(other.calls.withLockedValue { $0 }.isEmpty)
        registry.resume(by: ObjectIdentifier(token))
        #expect(!a.isPaused && !b.isPaused)
        #expect(!registry.isPausing(ObjectIdentifier(token)))
    }

    /// A reload's new driver registers under the name of the old one before the old one finishes: the old
    /// one's unregistration must not take the new one out (it would never be paused again).
    @Test func unregisteringAReplacedControlKeepsItsSuccessor() {
        let directory = UpstreamDirectory(names: ["a"])
        let registry = FlowControlRegistry(directory: directory)
        let old = SinkFakeFlowControl()
        let new = SinkFakeFlowControl()
        let token = Token()
        registry.register(upstream: "a", flowControl: old)
        registry.pause(by: ObjectIdentifier(token), upstreams: .all)
        registry.register(upstream: "a", flowControl: new)
        #expect(new.isPaused)
        #expect(old.calls.withLockedValue { $0 } == ["pause", "resume"], "the replaced one is not left paused")
        registry.unregister(upstream: "a", flowControl: old)
        registry.resume(by: ObjectIdentifier(token))
        #expect(new.calls.withLockedValue { $0 } == ["pause", "resume"])
        registry.pause(by: ObjectIdentifier(token), upstreams: UpstreamSelection(names: ["a"], directory: directory))
        #expect(new.isPaused)
        registry.unregister(upstream: "a", flowControl: new)
        #expect(!new.isPaused, "unregistering releases its pauses")
    }
}
