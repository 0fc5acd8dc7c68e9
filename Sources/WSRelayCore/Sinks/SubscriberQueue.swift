/// The bounded queue of one Unix-socket subscriber: bytes handed to its channel that the kernel has not
/// taken yet, and what happens when the subscriber does not read fast enough.
///
/// - `disconnect` (`slow_consumer = "disconnect"`, the default): the first run of lines that would push the
///   queue past `limit` ends the subscription (`.disconnect`); nothing more is admitted.
/// - `drop`: lines that do not fit are dropped for this subscriber alone and counted per upstream, and so is
///   everything after them until its queue is down to the low-water mark (`limit / 2`); then `completed`
///   returns the gaps to send before anything else.
///
/// Upstreams are never paused for a subscriber. A run larger than `limit` is accepted when the queue is empty.
struct SubscriberQueue: Sendable {
    enum Admission: Sendable, Equatable {
        case accepted
        case dropped
        case disconnect
    }

    let limit: Int
    let policy: SlowConsumerPolicy

    private(set) var queued = 0
    private(set) var dropping = false
    private(set) var isDisconnected = false
    private(set) var gaps = GapCounter()
    private(set) var totalDropped: UInt64 = 0

    init(limit: Int, policy: SlowConsumerPolicy) {
        self.limit = max(1, limit)
        self.policy = policy
    }

    var lowWater: Int { limit / 2 }

    func fits(_ bytes: Int) -> Bool {
        !isDisconnected && !dropping && (queued == 0 || queued + bytes <= limit)
    }

    mutating func admit(_ bytes: Int) -> Admission {
        if isDisconnected || dropping { return .dropped }
        if queued > 0 && queued + bytes > limit {
            switch policy {
            case .disconnect:
                isDisconnected = true
                return .disconnect
            case .drop:
                dropping = true
                return .dropped
            }
        }
        queued += bytes
        return .accepted
    }

    /// Replies to the subscriber and gap records: small, never dropped.
    mutating func admitUnconditionally(_ bytes: Int) {
        queued += bytes
    }

    mutating func recordDrop(upstream: UInt16, seq: UInt64) {
        gaps.record(upstream: upstream, seq: seq)
        totalDropped += 1
    }

    /// The kernel took `bytes`. Returns the gaps to report when this ends a drop episode.
    mutating func completed(_ bytes: Int) -> [GapCounter.Gap]? {
        queued = max(0, queued - bytes)
        guard dropping, queued <= lowWater else { return nil }
        dropping = false
        let taken = gaps.take()
        return taken.isEmpty ? nil : taken
    }
}
