import Logging

/// Applies a changed config file without a restart (SIGHUP, `systemctl reload`).
///
/// A config that fails validation changes nothing: the errors are logged and the running configuration
/// stays. systemd is told RELOADING=1 (with MONOTONIC_USEC, for Type=notify-reload) and READY=1 after,
/// whether or not the new file was accepted, so `systemctl reload` never hangs.
final class ConfigReloader: Sendable {
    private let path: String
    private let environment: [String: String]
    private let logLevelOverride: Logger.Level?
    private let logLevel: LogLevelControl
    private let runtime: RelayRuntime
    private let notifier: SystemdNotifier
    private let board: DaemonStatusBoard
    private let logger: Logger

    init(
        path: String, environment: [String: String], logLevelOverride: Logger.Level?, logLevel: LogLevelControl,
        runtime: RelayRuntime, notifier: SystemdNotifier, board: DaemonStatusBoard,
        logger: Logger
    ) {
        self.path = path
        self.environment = environment
        self.logLevelOverride = logLevelOverride
        self.logLevel = logLevel
        self.runtime = runtime
        self.notifier = notifier
        self.board = board
        self.logger = logger
    }

    /// Loads the file and applies it. Returns what happened, for the control socket's reply.
    @discardableResult
    func reload() async -> ReloadOutcome {
        notifier.reloading()
        defer { notifier.ready(status: DaemonStatusBoard.line(board.snapshot)) }
        logger.notice("reloading configuration", metadata: ["config": "\(path)"])
        switch ConfigLoader.load(path: path, environment: environment) {
        case .failure(let error):
            let errors = error.diagnostics.filter { $0.severity == .error }.map { "\($0)" }
            for diagnostic in error.diagnostics {
                logger.error("reload rejected: \(diagnostic)")
            }
            logger.error("reload rejected: the running configuration stays in effect", metadata: [
                "errors": "\(errors.count)",
            ])
            return .rejected(errors)
        case .success(let loaded):
            for warning in loaded.warnings { logger.warning("\(warning)") }
            let next = loaded.configuration
            do {
                let plan = try await runtime.apply(next)
                logLevel.level = logLevelOverride ?? next.daemon.logLevel
                logger.notice("configuration reloaded")
                return .applied(plan)
            } catch {
                logger.error("reload rejected: \(error); the running configuration stays in effect")
                return .rejected(["\(error)"])
            }
        }
    }
}

/// The result of one reload, as the control socket reports it.
enum ReloadOutcome: Sendable {
    case applied(ReloadPlan)
    /// Nothing changed; the reasons (config diagnostics naming file and key, or the sink that failed to open).
    case rejected([String])
}
