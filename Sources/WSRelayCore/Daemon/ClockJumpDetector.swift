/// Notices, from three clock readings taken about once a second, that the machine was suspended or that the
/// wall clock was stepped.
///
/// - CLOCK_MONOTONIC stops while the machine sleeps; CLOCK_BOOTTIME keeps counting. Between two samples,
///   boottime advancing more than monotonic by at least `suspendThreshold` means we were suspended that long:
///   every connection may be dead without knowing it, so the daemon pings them all at once.
/// - CLOCK_REALTIME normally advances with boottime (suspend included). A difference of at least
///   `stepThreshold` means the wall clock was stepped (by an operator, or NTP at boot): logged, since the
///   envelope's `ts` jumps by that much too.
///
/// A value with the clocks given to it, so tests feed exact readings; `ClockWatchService` reads the real ones.
public struct ClockJumpDetector: Sendable, Equatable {
    /// One sample of the three clocks, each since its own origin.
    public struct Reading: Sendable, Equatable {
        public var monotonic: Duration
        public var boottime: Duration
        public var realtime: Duration

        public init(monotonic: Duration, boottime: Duration, realtime: Duration) {
            self.monotonic = monotonic
            self.boottime = boottime
            self.realtime = realtime
        }
    }

    public enum Finding: Sendable, Equatable {
        /// The machine slept about this long since the previous sample.
        case resumed(suspended: Duration)
        /// The wall clock moved this much more (negative: back) than elapsed time.
        case wallClockStepped(by: Duration)
    }

    public let suspendThreshold: Duration
    public let stepThreshold: Duration
    private var last: Reading?

    public init(suspendThreshold: Duration = .seconds(2), stepThreshold: Duration = .seconds(1)) {
        self.suspendThreshold = suspendThreshold
        self.stepThreshold = stepThreshold
    }

    public mutating func observe(_ reading: Reading) -> [Finding] {
        defer { last = reading }
        guard let last else { return [] }
        let monotonic = reading.monotonic - last.monotonic
        let boottime = reading.boottime - last.boottime
        let realtime = reading.realtime - last.realtime
        var findings: [Finding] = []
        let slept = boottime - monotonic
        if slept >= suspendThreshold { findings.append(.resumed(suspended: slept)) }
        let step = realtime - boottime
        if step >= stepThreshold || step <= .zero - stepThreshold { findings.append(.wallClockStepped(by: step)) }
        return findings
    }
}
