/// Messages per second per upstream over the last few samples, for `status`.
///
/// A value type fed by a timer (every few seconds) with each upstream's message counter, so the rate shown
/// is recent ("now") rather than an average since start, and reading it costs nothing on the hot path.
struct MessageRateMeter: Sendable {
    private struct Sample: Sendable {
        var at: ContinuousClock.Instant
        var messages: UInt64
    }

    private struct History: Sendable {
        var samples: [Sample] = []
        /// The `record` round that last saw this upstream.
        var round: UInt64 = 0

        mutating func add(_ sample: Sample, round: UInt64, depth: Int) {
            // A counter that went backwards belongs to a different upstream of the same name.
            if let last = samples.last, last.messages > sample.messages { samples.removeAll(keepingCapacity: true) }
            if samples.count >= depth { samples.removeFirst(samples.count - depth + 1) }
            samples.append(sample)
            self.round = round
        }
    }

    /// How many samples per upstream are kept; the rate spans from the oldest to now.
    let depth: Int
    private var histories: [String: History] = [:]
    private var round: UInt64 = 0

    init(depth: Int = 3) {
        self.depth = max(1, depth)
    }

    /// Records the counters of the upstreams that exist now and forgets the others.
    ///
    /// Updated in place: with 10,000 idle upstreams, rebuilding the dictionary every tick was 15 % of the
    /// daemon's idle CPU (bench/RESULTS.md, "Where the idle CPU goes").
    mutating func record(_ counters: some Sequence<(name: String, messages: UInt64)>, at now: ContinuousClock.Instant) {
        round &+= 1
        var seen = 0
        for (name, messages) in counters {
            seen += 1
            histories[name, default: History()].add(Sample(at: now, messages: messages), round: round, depth: depth)
        }
        // Every upstream seen has an entry, so more entries than upstreams means some were removed.
        if histories.count != seen {
            let current = round
            histories = histories.filter { $0.value.round == current }
        }
    }

    /// Messages per second from the oldest kept sample to (`messages`, `now`); 0 without an older sample.
    func rate(of name: String, messages: UInt64, at now: ContinuousClock.Instant) -> Double {
        guard let oldest = histories[name]?.samples.first, messages >= oldest.messages else { return 0 }
        let elapsed = Double((now - oldest.at).nanosecondsClamped) / 1e9
        guard elapsed > 0.5 else { return 0 }
        return Double(messages - oldest.messages) / elapsed
    }
}
