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

    func reload() async {
        notifier.reloading()
        logger.notice("reloading configuration", metadata: ["config": "\(path)"])
        switch ConfigLoader.load(path: path, environment: environment) {
        case .failure(let error):
            for diagnostic in error.diagnostics {
                logger.error("reload rejected: \(diagnostic)")
            }
            logger.error("reload rejected: the running configuration stays in effect", metadata: [
                "errors": "\(error.diagnostics.filter { $0.severity == .error }.count)",
            ])
        case .success(let loaded):
            for warning in loaded.warnings { logger.warning("\(warning)") }
            let next = loaded.configuration
            logLevel.level = logLevelOverride ?? next.daemon.logLevel
            await runtime.apply(next)
            logger.notice("configuration reloaded")
        }
        notifier.ready(status: DaemonStatusBoard.line(board.snapshot))
    }
}
