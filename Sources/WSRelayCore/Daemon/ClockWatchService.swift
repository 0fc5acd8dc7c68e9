import Foundation
import Glibc
import Logging
import ServiceLifecycle

/// Samples the clocks once a second (`ClockJumpDetector`). After a suspend/resume it pings every open
/// upstream connection at once instead of leaving each to its next ping slot (up to a whole
/// `ping_interval` of not knowing that a connection died while the machine slept), and logs it; a wall-clock
/// step is logged with its size.
///
/// Test hook: `WSRELAY_TEST_BOOTTIME_OFFSET_FILE` names a file holding a number of seconds added to every
/// CLOCK_BOOTTIME reading, so a test can simulate a suspend of the real binary by writing to it (the
/// detection, logging and pinging are exactly those of a real resume). Unset in production: nothing is read.
final class ClockWatchService: Service, Sendable {
    static let interval: Duration = .seconds(1)
    static let offsetFileVariable = "WSRELAY_TEST_BOOTTIME_OFFSET_FILE"

    private let upstreams: UpstreamFleet
    private let logger: Logger
    private let offsetFile: String?

    init(upstreams: UpstreamFleet, environment: [String: String], logger: Logger) {
        self.upstreams = upstreams
        self.logger = logger
        self.offsetFile = environment[Self.offsetFileVariable].flatMap { $0.isEmpty ? nil : $0 }
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var detector = ClockJumpDetector()
            _ = detector.observe(self.read())
            while true {
                try await Task.sleep(for: Self.interval)
                for finding in detector.observe(self.read()) { self.act(on: finding) }
            }
        }
    }

    private func act(on finding: ClockJumpDetector.Finding) {
        switch finding {
        case .resumed(let suspended):
            let drivers = upstreams.drivers
            // The clocks are read one after the other, so the difference is off by microseconds: whole seconds.
            let seconds = Duration.seconds((suspended + .milliseconds(500)).components.seconds)
            logger.notice("resumed after about \(UpstreamState.describe(seconds)) of suspend; pinging every connection now",
                          metadata: ["upstreams": "\(drivers.count)"])
            for driver in drivers { driver.pingNow() }
        case .wallClockStepped(let step):
            logger.warning("the wall clock was stepped by \(step); envelope ts values jump by as much",
                           metadata: ["step_seconds": "\(Double(step.components.seconds) + Double(step.components.attoseconds) / 1e18)"])
        }
    }

    private func read() -> ClockJumpDetector.Reading {
        var offset = Duration.zero
        if let offsetFile, let text = try? String(contentsOfFile: offsetFile, encoding: .utf8),
           let seconds = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            offset = .milliseconds(Int64(seconds * 1000))
        }
        return ClockJumpDetector.Reading(
            monotonic: Self.clock(CLOCK_MONOTONIC), boottime: Self.clock(CLOCK_BOOTTIME) + offset,
            realtime: Self.clock(CLOCK_REALTIME) + offset)
    }

    private static func clock(_ id: clockid_t) -> Duration {
        var ts = timespec()
        clock_gettime(id, &ts)
        return .seconds(Int64(ts.tv_sec)) + .nanoseconds(Int64(ts.tv_nsec))
    }
}
