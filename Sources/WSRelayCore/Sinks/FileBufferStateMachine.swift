/// The bounded buffer of one file (or stdout) sink: how many bytes are queued but not yet written, and what
/// happens when the writer falls behind.
///
/// - `block` (`on_full = "block"`): every line is kept. When the buffer reaches `capacity`, the sink asks
///   every upstream feeding it to pause (`.acceptedAndPause`, once); when the writer has brought it down to
///   the low-water mark (`capacity / 2`), it asks them to resume (`.resume`). Lines that upstreams had
///   already read when they were paused are still accepted, so the buffer may exceed `capacity` by that much.
/// - `drop` (`on_full = "drop"`): a message that does not fit is dropped and counted per upstream, and so is
///   every later message until the writer has brought the buffer down to the low-water mark; then the
///   counts come out as gap records (`.writeGaps`), placed in the stream where the loss happened.
///
/// A message larger than the whole buffer is accepted when the buffer is empty (otherwise it could never be
/// written). Pure value: the sink calls it under its lock, with no I/O.
struct FileBufferStateMachine: Sendable {
    enum Admission: Sendable, Equatable {
        case accepted
        /// Accepted, and the buffer is now full: pause the upstreams.
        case acceptedAndPause
        /// Not accepted; the caller records it with `recordDrop`.
        case dropped
    }

    enum DrainAction: Sendable, Equatable {
        case none
        case resume
        /// Write these gap records (then `admitUnconditionally` their bytes).
        case writeGaps([GapCounter.Gap])
    }

    let capacity: Int
    let policy: OnFullPolicy

    private(set) var buffered = 0
    /// Under `block`: the upstreams have been asked to pause.
    private(set) var pausing = false
    /// Under `drop`: in a drop episode (everything is dropped until the low-water mark).
    private(set) var dropping = false
    private(set) var gaps = GapCounter()
    private(set) var totalDropped: UInt64 = 0

    init(capacity: Int, policy: OnFullPolicy) {
        self.capacity = max(1, capacity)
        self.policy = policy
    }

    var lowWater: Int { capacity / 2 }

    /// Whether `bytes` would be accepted as a whole, without side effects.
    func fits(_ bytes: Int) -> Bool {
        switch policy {
        case .block: return true
        case .drop: return !dropping && (buffered == 0 || buffered + bytes <= capacity)
        }
    }

    mutating func admit(_ bytes: Int) -> Admission {
        switch policy {
        case .block:
            buffered += bytes
            if !pausing && buffered >= capacity {
                pausing = true
                return .acceptedAndPause
            }
            return .accepted
        case .drop:
            if dropping { return .dropped }
            if buffered > 0 && buffered + bytes > capacity {
                dropping = true
                return .dropped
            }
            buffered += bytes
            return .accepted
        }
    }

    /// For records that are never dropped (gap, connected, disconnected): small and rare.
    mutating func admitUnconditionally(_ bytes: Int) {
        buffered += bytes
    }

    mutating func recordDrop(upstream: UInt16, seq: UInt64) {
        gaps.record(upstream: upstream, seq: seq)
        totalDropped += 1
    }

    /// The writer handed `bytes` to the kernel (or gave them up at a forced stop).
    mutating func written(_ bytes: Int) -> DrainAction {
        buffered = max(0, buffered - bytes)
        if buffered > lowWater { return .none }
        if pausing {
            pausing = false
            return .resume
        }
        if dropping {
            dropping = false
            let taken = gaps.take()
            return taken.isEmpty ? .none : .writeGaps(taken)
        }
        return .none
    }
}
