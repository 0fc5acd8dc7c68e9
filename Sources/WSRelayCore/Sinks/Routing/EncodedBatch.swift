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

/// Accumulates the lines of one format while the router encodes, in one or more `EncodedBatch`es.
///
/// Why more than one: `ByteBuffer` rounds every allocation up to a power of two, and a sink keeps the whole
/// allocation alive while it holds any line of it, but counts only the lines' bytes against its `buffer` or
/// `queue`. A read burst of sixty-four 4 KiB messages is 262,208 bytes of raw lines, just over 256 KiB, so a
/// single buffer for it would be 512 KiB: a file sink holding "64 MiB" would pin about 128 MiB. So a builder
/// that is told the bytes to expect and the largest line to come (`reserve(lineOfAtMost:)`) fills buffers
/// whose power-of-two capacity the lines use up, and starts another when the next line does not fit.
struct EncodedBatchBuilder {
    var bytes: ByteBuffer
    var entries: [EncodedBatch.Entry] = []
    var upstreamBits: UInt64 = 0
    var hasHighUpstream = false
    var hasEvents = false

    private let allocator: ByteBufferAllocator
    /// Bytes still expected after the current buffer's start (an estimate for envelopes).
    private var expected: Int
    private var lines: Int
    private var finished: [EncodedBatch] = []

    /// Rounding a buffer up to the next power of two wastes at most this share of it (or `slack` bytes);
    /// more, and the builder fills a buffer of the power of two below and continues in another.
    static let wasteDivisor = 4
    static let slack = 16 * 1024

    /// `capacity`: the bytes expected in all. With `splitting`, the first buffer is sized by
    /// `bufferCapacity(expected:lineMaximum:)` and the caller announces every line with `reserve`; without,
    /// it is one buffer of `capacity` that grows as `ByteBuffer` grows (envelopes, whose lines are only
    /// bounded by six times the payload, still use that).
    init(allocator: ByteBufferAllocator, capacity: Int, lines: Int, splitting: Bool = false) {
        self.allocator = allocator
        self.expected = capacity
        self.lines = lines
        bytes = allocator.buffer(capacity: splitting && capacity > 0 ? Self.bufferCapacity(expected: capacity, lineMaximum: 0) : capacity)
        entries.reserveCapacity(lines)
    }

    /// The capacity of the next buffer (a power of two, as `ByteBuffer` would round it anyway).
    static func bufferCapacity(expected: Int, lineMaximum: Int) -> Int {
        let want = max(expected, lineMaximum, 1)
        let up = want.nextPowerOfTwo
        if up - want <= max(want / wasteDivisor, slack) { return up }
        return max(up / 2, lineMaximum.nextPowerOfTwo)
    }

    /// Makes room for a line of at most `maximum` bytes: when the current buffer has less room, it is
    /// finished (if it holds lines) and a new one started.
    @inline(__always)
    mutating func reserve(lineOfAtMost maximum: Int) {
        if bytes.writableBytes >= maximum { return }
        startBuffer(lineMaximum: maximum)
    }

    private mutating func startBuffer(lineMaximum: Int) {
        if !entries.isEmpty {
            expected = max(0, expected - bytes.readableBytes)
            lines = max(0, lines - entries.count)
            finished.append(finishCurrent())
            entries = []
            entries.reserveCapacity(lines)
            upstreamBits = 0
            hasHighUpstream = false
            hasEvents = false
        }
        bytes = allocator.buffer(capacity: Self.bufferCapacity(expected: expected, lineMaximum: lineMaximum))
    }

    @inline(__always)
    mutating func endLine(upstream: UInt16, isEvent: Bool, seq: UInt64) {
        entries.append(.init(end: UInt32(truncatingIfNeeded: bytes.readableBytes), upstream: upstream, isEvent: isEvent, seq: seq))
        if upstream < 64 { upstreamBits |= 1 << UInt64(upstream) } else { hasHighUpstream = true }
        if isEvent { hasEvents = true }
    }

    private func finishCurrent() -> EncodedBatch {
        var batch = EncodedBatch(bytes: bytes, entries: entries)
        batch.upstreamBits = upstreamBits
        batch.hasHighUpstream = hasHighUpstream
        batch.hasEvents = hasEvents
        return batch
    }

    /// Calls `body` with every batch built, in order (not at all when no line was written).
    func forEachBatch(_ body: (EncodedBatch) -> Void) {
        for batch in finished { body(batch) }
        if !entries.isEmpty { body(finishCurrent()) }
    }
}

extension Int {
    /// The smallest power of two >= self (1 for values <= 1).
    var nextPowerOfTwo: Int {
        self <= 1 ? 1 : 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount)
    }
}
