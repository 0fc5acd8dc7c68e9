import NIOCore

/// The lines of one `deliver` call in one format: every line in a single `ByteBuffer`, plus a small table
/// saying where each line ends and where it came from.
///
/// This is what "encode once, fan out many" hands around: a sink that takes every line of the batch gets
/// `bytes` itself (one reference-counted buffer, no copy); one that takes some gets slices of it, cut at
/// line boundaries. Nothing is ever split inside a line.
struct EncodedBatch: Sendable {
    struct Entry: Sendable, Equatable {
        /// Offset just past this line's `\n`, relative to the start of `bytes`.
        var end: UInt32
        var upstream: UInt16
        /// A connected/disconnected record (only for sinks with `events = true`), not a message.
        var isEvent: Bool
        /// The message's `seq` (0 for events); for gap records.
        var seq: UInt64
    }

    var bytes: ByteBuffer
    var entries: [Entry]
    /// Bit `i` set when some line comes from upstream id `i` (< 64).
    var upstreamBits: UInt64 = 0
    /// Some line comes from an upstream id >= 64.
    var hasHighUpstream = false
    var hasEvents = false

    init(bytes: ByteBuffer, entries: [Entry] = []) {
        self.bytes = bytes
        self.entries = entries
    }

    var isEmpty: Bool { entries.isEmpty }
    var messageCount: Int { entries.count { !$0.isEvent } }

    @inline(__always)
    func start(of index: Int) -> Int { index == 0 ? 0 : Int(entries[index - 1].end) }

    @inline(__always)
    func byteCount(of range: Range<Int>) -> Int {
        range.isEmpty ? 0 : Int(entries[range.upperBound - 1].end) - start(of: range.lowerBound)
    }

    /// The bytes of the lines in `range`, sharing storage with `bytes`.
    func slice(_ range: Range<Int>) -> ByteBuffer {
        if range.lowerBound == 0 && range.upperBound == entries.count { return bytes }
        let from = start(of: range.lowerBound)
        return bytes.getSlice(at: bytes.readerIndex + from, length: byteCount(of: range))!
    }

    /// True when a sink with this selection takes every line, so it can take `bytes` whole.
    @inline(__always)
    func isWhollyWanted(by selection: UpstreamSelection, events: Bool) -> Bool {
        if hasEvents && !events { return false }
        if selection.isAll { return true }
        return !hasHighUpstream && upstreamBits & ~selection.lowBits == 0
    }

    @inline(__always)
    func wants(_ entry: Entry, selection: UpstreamSelection, events: Bool) -> Bool {
        (events || !entry.isEvent) && selection.contains(entry.upstream)
    }

    /// Calls `body` with each maximal run of consecutive lines the selection takes.
    func forEachRun(selection: UpstreamSelection, events: Bool, _ body: (Range<Int>) -> Void) {
        if isWhollyWanted(by: selection, events: events) {
            if !entries.isEmpty { body(0..<entries.count) }
            return
        }
        var runStart = -1
        for i in entries.indices {
            if wants(entries[i], selection: selection, events: events) {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                body(runStart..<i)
                runStart = -1
            }
        }
        if runStart >= 0 { body(runStart..<entries.count) }
    }
}

/// Accumulates one batch while the router encodes.
struct EncodedBatchBuilder {
    var bytes: ByteBuffer
    var entries: [EncodedBatch.Entry] = []
    var upstreamBits: UInt64 = 0
    var hasHighUpstream = false
    var hasEvents = false

    init(allocator: ByteBufferAllocator, capacity: Int, lines: Int) {
        bytes = allocator.buffer(capacity: capacity)
        entries.reserveCapacity(lines)
    }

    @inline(__always)
    mutating func endLine(upstream: UInt16, isEvent: Bool, seq: UInt64) {
        entries.append(.init(end: UInt32(truncatingIfNeeded: bytes.readableBytes), upstream: upstream, isEvent: isEvent, seq: seq))
        if upstream < 64 { upstreamBits |= 1 << UInt64(upstream) } else { hasHighUpstream = true }
        if isEvent { hasEvents = true }
    }

    func finish() -> EncodedBatch {
        var batch = EncodedBatch(bytes: bytes, entries: entries)
        batch.upstreamBits = upstreamBits
        batch.hasHighUpstream = hasHighUpstream
        batch.hasEvents = hasEvents
        return batch
    }
}
