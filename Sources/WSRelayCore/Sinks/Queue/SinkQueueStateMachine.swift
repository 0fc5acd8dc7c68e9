/// The bounded queue of one sink or one subscriber: how many bytes are queued but not yet written, and what
/// happens when the writer (a file's thread, a subscriber's socket, the journal, a JetStream window) falls
/// behind. One machine for every sink, so the policies mean the same everywhere:
///
/// - `block` (files, stdout, JetStream with `on_full = "block"`): every line is kept. When the queue reaches
///   `capacity`, the sink asks every upstream feeding it to pause (`.acceptedAndPause`, once); when the
///   writer has brought it down to the low-water mark (`capacity / 2`), it asks them to resume (`.resume`).
///   Lines that upstreams had already read when they were paused are still accepted, so the queue may exceed
///   `capacity` by that much.
/// - `drop` (`on_full = "drop"`, `slow_consumer = "drop"`, the journal): a message that does not fit is
///   dropped and counted per upstream, and so is every later message until the writer has brought the queue
///   down to the low-water mark; then the counts come out as gap records (`.writeGaps`), placed in the
///   stream where the loss happened.
/// - `disconnect` (`slow_consumer = "disconnect"`, subscribers only): the first message or run that would
///   push the queue past `capacity` ends the subscription (`.disconnect`); nothing more is admitted.
///
/// A message (or run) larger than the whole queue is accepted when the queue is empty (otherwise it could
/// never be written). Upstreams are only ever paused under `block`. Pure value: the sink calls it under its
/// lock or on its event loop, with no I/O; `admit(_:selection:events:accept:)` applies it to a whole batch.
struct SinkQueueStateMachine: Sendable {
    enum Policy: Sendable, Equatable {
        case block, drop, disconnect
    }

    enum Admission: Sendable, Equatable {
        case accepted
        /// Accepted, and the queue is now full: pause the upstreams (`block`).
        case acceptedAndPause
        /// Not accepted; the caller records it with `recordDrop` (`drop`, or after a disconnect).
        case dropped
        /// Not accepted, and the subscriber must go (`disconnect`).
        case disconnect
    }

    enum DrainAction: Sendable, Equatable {
        case none
        case resume
        /// Write these gap records (then `admitUnconditionally` their bytes).
        case writeGaps([GapCounter.Gap])
    }

    let capacity: Int
    let policy: Policy

    private(set) var buffered = 0
    /// Under `block`: the upstreams have been asked to pause.
    private(set) var pausing = false
    /// Under `drop`: in a drop episode (everything is dropped until the low-water mark).
    private(set) var dropping = false
    /// Under `disconnect`: the subscriber overflowed; nothing is admitted any more.
    private(set) var isDisconnected = false
    private(set) var gaps = GapCounter()
    private(set) var totalDropped: UInt64 = 0

    init(capacity: Int, policy: Policy) {
        self.capacity = max(1, capacity)
        self.policy = policy
    }

    /// A file, stdout or JetStream buffer (`buffer`, `on_full`).
    init(capacity: Int, onFull: OnFullPolicy) {
        self.init(capacity: capacity, policy: onFull == .block ? .block : .drop)
    }

    /// A subscriber's queue (`queue`, `slow_consumer`).
    init(capacity: Int, slowConsumer: SlowConsumerPolicy) {
        self.init(capacity: capacity, policy: slowConsumer == .disconnect ? .disconnect : .drop)
    }

    var lowWater: Int { capacity / 2 }

    /// Whether `bytes` would be accepted as a whole, without side effects.
    func fits(_ bytes: Int) -> Bool {
        switch policy {
        case .block: return true
        case .drop, .disconnect: return !isDisconnected && !dropping && (buffered == 0 || buffered + bytes <= capacity)
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
        case .drop, .disconnect:
            if dropping || isDisconnected { return .dropped }
            if buffered > 0 && buffered + bytes > capacity {
                if policy == .disconnect {
                    isDisconnected = true
                    return .disconnect
                }
                dropping = true
                return .dropped
            }
            buffered += bytes
            return .accepted
        }
    }

    /// For records that are never dropped (gap, connected, disconnected, replies to a subscriber): small
    /// and rare.
    mutating func admitUnconditionally(_ bytes: Int) {
        buffered += bytes
    }

    mutating func recordDrop(upstream: UInt16, seq: UInt64) {
        gaps.record(upstream: upstream, seq: seq)
        totalDropped += 1
    }

    /// The writer handed `bytes` to the kernel (or the stream acknowledged them, or they were given up at a
    /// forced stop).
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
