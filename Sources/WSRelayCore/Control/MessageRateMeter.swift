/// Messages per second per upstream over the last few samples, for `status`.
///
/// A value type fed by a timer (every few seconds) with each upstream's message counter, so the rate shown
/// is recent ("now") rather than an average since start, and reading it costs nothing on the hot path.
struct MessageRateMeter: Sendable {
    private struct Sample: Sendable {
        var at: ContinuousClock.Instant
        var messages: UInt64
    }

    /// How many samples per upstream are kept; the rate spans from the oldest to now.
    let depth: Int
    private var samples: [String: [Sample]] = [:]

    init(depth: Int = 3) {
        self.depth = max(1, depth)
    }

    /// Records the counters of the upstreams that exist now and forgets the others.
    mutating func record(_ counters: [(name: String, messages: UInt64)], at now: ContinuousClock.Instant) {
        var next: [String: [Sample]] = [:]
        for (name, messages) in counters {
            var list = samples[name] ?? []
            // A counter that went backwards belongs to a different upstream of the same name.
            if let last = list.last, last.messages > messages { list = [] }
            list.append(Sample(at: now, messages: messages))
            if list.count > depth { list.removeFirst(list.count - depth) }
            next[name] = list
        }
        samples = next
    }

    /// Messages per second from the oldest kept sample to (`messages`, `now`); 0 without an older sample.
    func rate(of name: String, messages: UInt64, at now: ContinuousClock.Instant) -> Double {
        guard let oldest = samples[name]?.first, messages >= oldest.messages else { return 0 }
        let elapsed = Double((now - oldest.at).nanosecondsClamped) / 1e9
        guard elapsed > 0.5 else { return 0 }
        return Double(messages - oldest.messages) / elapsed
    }
}
