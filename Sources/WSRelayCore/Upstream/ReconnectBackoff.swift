/// How long to wait before the next reconnect attempt.
///
/// It exists so that an upstream that is down is not hammered, and so that many relays (or many upstreams
/// of one relay) that lost the same server at the same moment do not all come back in lockstep. It uses
/// exponential growth with *full jitter*: the delay for attempt `n` (0-based) is drawn uniformly from
/// `[0, min(max, initial * multiplier^n)]`, which spreads a thundering herd over the whole window.
///
/// A draw below `floor` (100ms) is raised to the floor, so a zero draw can never turn into a tight loop.
/// The floor also wins over a configured `max` smaller than it.
///
/// Randomness is injected (`nextDelay(using:)`), so tests are deterministic with a seeded generator.
public struct ReconnectBackoff: Sendable, Equatable {
    /// The smallest delay ever returned.
    public static let floor: Duration = .milliseconds(100)

    public let initial: Duration
    public let maximum: Duration
    public let multiplier: Double
    /// How many delays have been handed out since creation or the last `reset()`; the exponent of the next one.
    public private(set) var attempt: Int = 0

    public init(initial: Duration, maximum: Duration, multiplier: Double) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
    }

    public init(_ settings: ReconnectSettings) {
        self.init(initial: settings.initial, maximum: settings.max, multiplier: settings.multiplier)
    }

    /// The upper bound of the jitter window for a given attempt: `min(max, initial * multiplier^attempt)`,
    /// never below `floor`.
    public func ceiling(forAttempt attempt: Int) -> Duration {
        let maxNanos = Double(maximum.nonNegativeNanosecondsClamped)
        var grown = Double(initial.nonNegativeNanosecondsClamped)
        // A multiplier <= 1 does not grow (the config validator rejects < 1; be safe anyway).
        if multiplier > 1 {
            var n = 0
            while n < attempt && grown < maxNanos {
                grown *= multiplier
                n += 1
            }
        }
        let capped = min(grown, maxNanos)
        let nanos: Int64 = !(capped > 0) ? 0 : (capped >= 9.2e18 ? .max : Int64(capped))
        return Swift.max(.nanoseconds(nanos), Self.floor)
    }

    /// Draws the delay for the current attempt and advances the attempt counter.
    public mutating func nextDelay<G: RandomNumberGenerator>(using generator: inout G) -> Duration {
        let window = ceiling(forAttempt: attempt).nonNegativeNanosecondsClamped
        if attempt < Int.max { attempt += 1 }
        // Uniform in 0...window by multiply-high: no rejection loop (so any generator, even a constant one,
        // terminates) and a bias below window / 2^64, irrelevant for nanosecond delays.
        let draw = generator.next().multipliedFullWidth(by: UInt64(window) + 1).high
        return Swift.max(.nanoseconds(Int64(draw)), Self.floor)
    }

    /// Starts over at attempt 0; called once a connection has proven stable.
    public mutating func reset() {
        attempt = 0
    }
}
