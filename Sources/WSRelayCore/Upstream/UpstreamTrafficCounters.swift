import Synchronization

/// One upstream's traffic — messages, payload bytes, when the last message came — counted once per delivered
/// batch by its driver and read by everything that reports it: `wsrelay status`, `/metrics` (at scrape time)
/// and `STATUS=`. Each batch used to be counted three times: in the driver's locked status, in two metric
/// counters, and on the status board behind one process-wide lock.
///
/// One instance per upstream name for the life of the process (`UpstreamTrafficBook`): a reload that replaces
/// an upstream's driver hands the new driver the same counters, so the numbers simply continue.
public final class UpstreamTrafficCounters: Sendable {
    private let messageCount = Atomic<UInt64>(0)
    private let byteCount = Atomic<UInt64>(0)
    /// Nanoseconds from `origin` to the last message; -1 before the first.
    private let lastMessageNanoseconds = Atomic<Int64>(-1)
    private static let origin = ContinuousClock.now

    public init() {}

    public var messages: UInt64 { messageCount.load(ordering: .relaxed) }
    public var bytes: UInt64 { byteCount.load(ordering: .relaxed) }
    public var lastMessageAt: ContinuousClock.Instant? {
        let nanoseconds = lastMessageNanoseconds.load(ordering: .relaxed)
        return nanoseconds < 0 ? nil : Self.origin + .nanoseconds(nanoseconds)
    }

    /// One delivered batch (the driver's loop is the only writer of a live upstream).
    public func record(messages: UInt64, bytes: UInt64, at instant: ContinuousClock.Instant = .now) {
        messageCount.add(messages, ordering: .relaxed)
        byteCount.add(bytes, ordering: .relaxed)
        lastMessageNanoseconds.store(max(0, (instant - Self.origin).nanosecondsClamped), ordering: .relaxed)
    }

    /// Counts from before this process (a restart through the fd store hands over each upstream's `seq`):
    /// raises the message count to `messages` if it is lower, so `seq` and the count stay one number.
    public func continueFrom(messages: UInt64) {
        messageCount.max(messages, ordering: .relaxed)
    }
}

/// The traffic counters of every upstream by name, made on first use and kept for the life of the process.
public final class UpstreamTrafficBook: Sendable {
    private let byName = Mutex<[String: UpstreamTrafficCounters]>([:])

    public init() {}

    public func counters(for upstream: String) -> UpstreamTrafficCounters {
        byName.withLock { all in
            if let existing = all[upstream] { return existing }
            let made = UpstreamTrafficCounters()
            all[upstream] = made
            return made
        }
    }

    /// Messages received from all upstreams since start, removed ones included (STATUS=).
    public var totalMessages: UInt64 {
        byName.withLock { all in all.values.reduce(0) { $0 &+ $1.messages } }
    }
}
