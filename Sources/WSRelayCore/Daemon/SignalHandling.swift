import Logging
import UnixSignals

/// What the daemon does on each signal. Owned by `Daemon`, which runs it beside the service group rather than
/// inside it, so that it keeps listening while the group shuts down (a second SIGTERM must still be heard).
struct SignalHandling {
    var onShutdown: @Sendable (_ signal: UnixSignal) async -> Void
    var onForcedExit: @Sendable (_ signal: UnixSignal) -> Void
    var onReload: @Sendable () async -> Void

    /// Installs the handlers; call before announcing readiness so no signal can hit a default action.
    static func trap() async -> UnixSignalsSequence {
        await UnixSignalsSequence(trapping: .sigterm, .sigint, .sighup)
    }

    func run(_ signals: UnixSignalsSequence) async {
        var shuttingDown = false
        for await signal in signals {
            switch signal {
            case .sigterm, .sigint:
                if shuttingDown {
                    onForcedExit(signal)
                } else {
                    shuttingDown = true
                    await onShutdown(signal)
                }
            case .sighup:
                if !shuttingDown { await onReload() }
            default:
                break
            }
        }
    }
}
