/// The messages of one JetStream sink between "received" and "acknowledged by the stream", and the bound on
/// how many are published at once.
///
/// Each entry moves pending → in flight → acknowledged (gone). A failed publish (an ack timeout, a lost
/// connection, an error from the server) does not jump the queue: the window stops sending, waits until every
/// other message in flight has resolved, then puts the failed ones back at the head of the queue in their
/// original order, so the retries go out in order before anything newer. A retry carries the same message id,
/// so a message that was stored but whose ack was lost is acknowledged as a duplicate and not stored twice.
///
/// Pure value: the sink drives it under its lock, with no I/O. `Item` is what the sink needs to publish.
struct PublishWindow<Item: Sendable>: Sendable {
    struct Entry: Sendable {
        /// Unique for the life of the window, increasing in arrival order.
        var id: UInt64
        var item: Item
        /// What the entry costs in the sink's buffer, released when it is acknowledged.
        var bytes: Int
        var attempts: Int = 0
    }

    let limit: Int
    private var queue: [Entry] = []
    private var queueHead = 0
    private var inFlight: [UInt64: Entry] = [:]
    private var failed: [Entry] = []
    private var nextID: UInt64 = 1
    /// A publish failed: send nothing until every in-flight message has resolved.
    private(set) var recovering = false
    private(set) var acknowledged: UInt64 = 0
    private(set) var duplicates: UInt64 = 0
    private(set) var retried: UInt64 = 0

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    var pendingCount: Int { queue.count - queueHead + failed.count }
    var inFlightCount: Int { inFlight.count }
    var isEmpty: Bool { pendingCount == 0 && inFlight.isEmpty }
    /// Whether `next()` would return an entry.
    var canSend: Bool { !recovering && inFlight.count < limit && queueHead < queue.count }

    mutating func append(_ item: Item, bytes: Int) {
        queue.append(Entry(id: nextID, item: item, bytes: bytes))
        nextID += 1
    }

    /// The next entry to publish, now counted in flight; nil when the window is full, recovering or empty.
    mutating func next() -> Entry? {
        guard canSend else { return nil }
        var entry = queue[queueHead]
        queueHead += 1
        compact()
        entry.attempts += 1
        inFlight[entry.id] = entry
        return entry
    }

    enum Outcome: Equatable {
        /// Not in flight (already resolved): ignore.
        case unknown
        /// Acknowledged: release this many bytes from the buffer.
        case released(Int)
        /// Failed: will be sent again.
        case willRetry
    }

    /// `attempt` is the entry's `attempts` when it was published: an answer to an earlier attempt of a message
    /// that has since been sent again (after a reconnect) is ignored.
    mutating func acknowledged(_ id: UInt64, attempt: Int, duplicate: Bool = false) -> Outcome {
        guard inFlight[id]?.attempts == attempt, let entry = inFlight.removeValue(forKey: id) else { return .unknown }
        acknowledged += 1
        if duplicate { duplicates += 1 }
        finishRecoveryIfResolved()
        return .released(entry.bytes)
    }

    mutating func failed(_ id: UInt64, attempt: Int) -> Outcome {
        guard inFlight[id]?.attempts == attempt, let entry = inFlight.removeValue(forKey: id) else { return .unknown }
        failed.append(entry)
        recovering = true
        retried += 1
        finishRecoveryIfResolved()
        return .willRetry
    }

    /// The connection is gone and its publishes will never be answered: every message in flight fails.
    mutating func failAllInFlight() {
        for (id, entry) in inFlight.sorted(by: { $0.key < $1.key }) { _ = failed(id, attempt: entry.attempts) }
    }

    /// Everything not yet acknowledged, removed (a forced stop); returns how many messages and bytes.
    mutating func abandon() -> (messages: Int, bytes: Int) {
        let rest = queue[queueHead...] + failed + Array(inFlight.values)
        queue = []
        queueHead = 0
        failed = []
        inFlight = [:]
        recovering = false
        return (rest.count, rest.reduce(0) { $0 + $1.bytes })
    }

    private mutating func finishRecoveryIfResolved() {
        guard recovering, inFlight.isEmpty else { return }
        failed.sort { $0.id < $1.id }
        queue.replaceSubrange(0..<queueHead, with: failed)
        queueHead = 0
        failed = []
        recovering = false
    }

    private mutating func compact() {
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: queue.capacity <= 65_536)
            queueHead = 0
        } else if queueHead >= 4096 && queueHead * 2 >= queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
    }
}
