/// One stretch of failing writes (or reopens), from the first failure to the next success.
///
/// It exists so that a full disk logs one line when it starts and one when it ends — not one per retry — and
/// so that retries back off: 100 ms, doubling, at most 5 s between attempts. Time is passed in, so tests
/// drive it with plain instants.
struct WriteErrorEpisode: Sendable, Equatable {
    struct Recovery: Sendable, Equatable {
        var duration: Duration
        var failures: Int
        var lastError: String
    }

    var initialDelay: Duration = .milliseconds(100)
    var maximumDelay: Duration = .seconds(5)

    private(set) var startedAt: ContinuousClock.Instant? = nil
    private(set) var failures = 0
    private(set) var retryAt: ContinuousClock.Instant? = nil
    private(set) var lastError = ""

    init(initialDelay: Duration = .milliseconds(100), maximumDelay: Duration = .seconds(5)) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
    }

    var isActive: Bool { startedAt != nil }

    /// Records a failure. Returns true when this failure starts a new episode (the one to log).
    @discardableResult
    mutating func failed(_ error: String, now: ContinuousClock.Instant) -> Bool {
        let isNew = startedAt == nil
        if isNew { startedAt = now }
        failures += 1
        lastError = error
        retryAt = now + delay(afterFailures: failures)
        return isNew
    }

    /// Records a success. Returns what to log when it ends an episode.
    mutating func succeeded(now: ContinuousClock.Instant) -> Recovery? {
        guard let started = startedAt else { return nil }
        let recovery = Recovery(duration: now - started, failures: failures, lastError: lastError)
        startedAt = nil
        failures = 0
        retryAt = nil
        return recovery
    }

    /// Whether an attempt may be made now (always outside an episode).
    func mayRetry(now: ContinuousClock.Instant) -> Bool {
        guard let retryAt else { return true }
        return now >= retryAt
    }

    func delay(afterFailures n: Int) -> Duration {
        var d = initialDelay
        var k = 1
        while k < n && d < maximumDelay {
            d = d * 2
            k += 1
        }
        return min(d, maximumDelay)
    }
}
