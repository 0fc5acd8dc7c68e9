/// Process exit statuses, chosen so that systemd's `RestartPreventExitStatus=78` stops restart loops on a
/// broken config while every other failure is retried.
public enum DaemonExitCode: Int32, Sendable {
    case success = 0
    /// Startup failed for a reason a restart may fix (socket in use, directory missing, already running).
    case failure = 1
    /// Command-line usage error (sysexits EX_USAGE).
    case usage = 64
    /// The daemon or control socket could not be reached (sysexits EX_UNAVAILABLE).
    case unavailable = 69
    /// Invalid configuration (sysexits EX_CONFIG).
    case config = 78
}
