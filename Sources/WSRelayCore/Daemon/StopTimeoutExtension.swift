/// Decides when to ask systemd for more time while the daemon stops (`EXTEND_TIMEOUT_USEC=`): only while
/// the drain still makes progress, so a drain that is stuck (a file on a full disk, a FIFO nobody reads)
/// still ends at `TimeoutStopSec=` and a healthy one that is merely long is not killed in the middle.
///
/// Fed every `interval` with the bytes still waiting in the sinks; answers with the extension to send, if
/// any. The extension covers a little more than one interval, so it lapses soon after progress stops.
struct StopTimeoutExtension: Sendable, Equatable {
    let interval: Duration
    private var lastRemaining: Int?

    init(interval: Duration = .seconds(1)) {
        self.interval = interval
    }

    /// How long to extend by from now, or nil: nothing left, or no progress since the last sample.
    mutating func observe(remaining: Int) -> Duration? {
        defer { lastRemaining = remaining }
        guard remaining > 0 else { return nil }
        guard let lastRemaining, remaining < lastRemaining else { return nil }  // no progress seen (yet)
        return interval * 3
    }
}
