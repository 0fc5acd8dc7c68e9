import NIOConcurrencyHelpers
import NIOCore

/// Turns the upstreams' individual states into the daemon status board's summary (the `STATUS=` line sent to
/// systemd and the header of `wsrelay status`): how many are configured and connected, and the problems,
/// worst first.
final class UpstreamStatusSummary: Sendable {
    private let fleetBox = NIOLockedValueBox<UpstreamFleet?>(nil)

    var fleet: UpstreamFleet? {
        get { fleetBox.withLockedValue { $0 } }
        set { fleetBox.withLockedValue { $0 = newValue } }
    }

    private let pending = NIOLockedValueBox(false)

    /// Publishes within `delay`, once for however many changes arrive meanwhile: a status change of one
    /// upstream must not cost work proportional to all of them (10,000 upstreams connecting at once made
    /// this quadratic and starved the event loops).
    func publishSoon(to board: DaemonStatusBoard, on loop: any EventLoop, delay: TimeAmount = .milliseconds(100)) {
        let first = pending.withLockedValue { scheduled -> Bool in
            defer { scheduled = true }
            return !scheduled
        }
        guard first else { return }
        loop.scheduleTask(in: delay) { [self] in
            pending.withLockedValue { $0 = false }
            publish(to: board)
        }
    }

    func publish(to board: DaemonStatusBoard) {
        let states = fleet?.drivers.map(\.status) ?? []
        board.update { snapshot in
            snapshot.upstreamsConfigured = states.count
            snapshot.upstreamsConnected = states.filter { $0.phase == .open }.count
            snapshot.problems = Self.problems(states)
        }
    }

    /// What an operator needs to read first about an upstream that is not delivering, with its severity
    /// (lower is worse), or nil if it is fine. Stopped for good is worst; then failing to connect or
    /// authenticate; then paused (an operator's choice, but still not delivering).
    static func problem(_ state: UpstreamState) -> (severity: Int, text: String)? {
        let cause = state.lastError ?? state.lastCloseCode.map { code in
            "closed \(code)" + (state.lastCloseReason.map { $0.isEmpty ? "" : " \($0)" } ?? "")
        }
        switch state.phase {
        case .stopped:
            return (0, "\(state.name): stopped: \(cause ?? "fatal close")")
        case .backingOff:
            return (1, "\(state.name): \(cause ?? state.phase.rawValue)")
        case .refreshingCredentials, .connecting:
            return cause.map { (2, "\(state.name): \($0)") }
        case .paused:
            return (3, "\(state.name): paused")
        default:
            return nil
        }
    }

    /// The problems of all upstreams, worst first (configuration order among equals).
    static func problems(_ states: [UpstreamState]) -> [String] {
        states.compactMap(problem).enumerated()
            .sorted { ($0.element.severity, $0.offset) < ($1.element.severity, $1.offset) }
            .map(\.element.text)
    }
}
