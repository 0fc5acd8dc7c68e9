import Logging

/// What the command line asked of `wsrelay run`, before the config file is read.
public struct LaunchOptions: Sendable {
    public static let defaultConfigPath = "/etc/wsrelay/wsrelay.toml"
    /// Where `--daemon` puts its PID file when neither `--pid-file` nor `[daemon] pid_file` names one.
    public static let defaultDaemonPIDFile = "/run/wsrelay/wsrelay.pid"

    public var configPath: String
    public var daemonize: Bool
    public var pidFile: String?
    public var logLevel: Logger.Level?

    public init(configPath: String?, daemonize: Bool, pidFile: String?, logLevel: Logger.Level?, environment: [String: String]) {
        self.configPath = configPath ?? environment["WSRELAY_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultConfigPath
        self.daemonize = daemonize
        self.pidFile = pidFile
        self.logLevel = logLevel
    }
}
