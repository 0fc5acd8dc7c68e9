import NIOCore

/// Messages one sink (or one subscriber) dropped since its last gap record, per upstream.
///
/// A sink drops everything of an upstream while it is in a drop episode, so the dropped `seq`s of one
/// upstream form one range; the counter still tracks lowest/highest rather than assuming it.
struct GapCounter: Sendable, Equatable {
    struct Gap: Sendable, Equatable {
        var upstream: UInt16
        var dropped: UInt64
        var firstSeq: UInt64
        var lastSeq: UInt64
    }

    /// In order of first drop; a handful of upstreams at most, so a linear search beats hashing.
    private(set) var gaps: [Gap] = []

    var isEmpty: Bool { gaps.isEmpty }
    var total: UInt64 { gaps.reduce(0) { $0 + $1.dropped } }

    mutating func record(upstream: UInt16, seq: UInt64, count: UInt64 = 1) {
        for i in gaps.indices where gaps[i].upstream == upstream {
            gaps[i].dropped += count
            gaps[i].firstSeq = min(gaps[i].firstSeq, seq)
            gaps[i].lastSeq = max(gaps[i].lastSeq, seq)
            return
        }
        gaps.append(Gap(upstream: upstream, dropped: count, firstSeq: seq, lastSeq: seq))
    }

    mutating func record(_ batch: EncodedBatch, _ range: Range<Int>) {
        for i in range where !batch.entries[i].isEvent {
            record(upstream: batch.entries[i].upstream, seq: batch.entries[i].seq)
        }
    }

    /// Returns the gaps to report and starts counting afresh.
    mutating func take() -> [Gap] {
        defer { gaps = [] }
        return gaps
    }
}

extension EnvelopeEncoder {
    /// One `gap` record per upstream, in `buffer`.
    mutating func appendGaps(_ gaps: [GapCounter.Gap], names: UpstreamDirectory, at time: WallClockTime, to buffer: inout ByteBuffer) {
        for gap in gaps {
            appendGap(upstream: names.name(of: gap.upstream), dropped: gap.dropped, firstSeq: gap.firstSeq,
                      lastSeq: gap.lastSeq, at: time, to: &buffer)
        }
    }
}
