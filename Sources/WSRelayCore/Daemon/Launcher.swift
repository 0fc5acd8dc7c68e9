import Glibc
import Logging

/// Everything `wsrelay run` decided and acquired before the first thread exists.
public struct PreparedLaunch: Sendable {
    public var options: LaunchOptions
    public var loaded: LoadedConfiguration
    public var environment: [String: String]
    public var pidFile: PIDFile?
    /// Present only in `--daemon` mode: how the daemon tells its launcher it is ready (or why it is not).
    public var readiness: Daemonizer.ReadinessPipe?
    public var logLevel: LogLevelControl
    public var logDestination: LogDestination
    /// Whether the relay's malloc thresholds were set (see `MallocTuning`).
    public var malloc: MallocTuning.Outcome = .applied
}

/// The synchronous first half of `wsrelay run`: read the config, take the PID file, fork, set up logging.
///
/// It runs on the main thread before any `await`, because `--daemon` must fork while the process still has
/// exactly one thread. Failures here are printed straight to the terminal and end the process with the
/// documented exit status (78 for a bad config) — nothing has started that would need a graceful shutdown.
public enum Launcher {
    public static func prepare(_ options: LaunchOptions, environment: [String: String]) -> PreparedLaunch {
        resetInheritedSignalState()
        signal(SIGPIPE, SIG_IGN)
        // A file sink at RLIMIT_FSIZE must get EFBIG (and retry), not be killed.
        signal(SIGXFSZ, SIG_IGN)

        let loaded: LoadedConfiguration
        switch ConfigLoader.load(path: options.configPath, environment: environment) {
        case .success(let value):
            loaded = value
        case .failure(let error):
            fail("\(error)", code: .config, header: "invalid configuration, not starting:")
        }

        let pidPath = options.pidFile ?? loaded.configuration.daemon.pidFile
            ?? (options.daemonize ? LaunchOptions.defaultDaemonPIDFile : nil)
        var pidFile: PIDFile?
        if let pidPath {
            do {
                pidFile = try PIDFile.acquire(path: pidPath)
            } catch {
                fail(error.description, code: .failure)
            }
        }

        var readiness: Daemonizer.ReadinessPipe?
        if options.daemonize {
            do {
                readiness = try Daemonizer.daemonize(keeping: Set([pidFile?.descriptor].compactMap { $0 }))
            } catch {
                fail(error.description, code: .failure)
            }
        }

        let control = LogLevelControl(options.logLevel ?? loaded.configuration.daemon.logLevel)
        var destination = LogDestination.resolve(loaded.configuration.daemon.logTarget, environment: environment)
        if options.daemonize, loaded.configuration.daemon.logTarget == .auto {
            // A classic daemon's stderr is /dev/null: log to the journal where one runs.
            destination = access("/run/systemd/journal/socket", F_OK) == 0 ? .journal : .stderr
        }
        let chosen = destination
        LoggingSystem.bootstrap { label in
            switch chosen {
            case .journal: return JournalLogHandler(control: control)
            case .stderr: return StderrLogHandler(label: label, control: control)
            }
        }
        FileDescriptorLimit.raiseSoftLimitToHard()
        let malloc = MallocTuning.apply(environment: environment)
        // Before any event loop exists: see instantiateMetadata for the runtime crash this avoids.
        WebSocketUpgradePipeline.instantiateMetadata()

        return PreparedLaunch(
            options: options,
            loaded: loaded,
            environment: environment,
            pidFile: pidFile,
            readiness: readiness,
            logLevel: control,
            logDestination: destination,
            malloc: malloc
        )
    }

    /// daemon(7): whoever started us may have left signals blocked or ignored (a thread of a test runner, a
    /// shell with `trap '' HUP`); start from the defaults so SIGTERM and SIGHUP mean what the docs say.
    static func resetInheritedSignalState() {
        var empty = sigset_t()
        sigemptyset(&empty)
        sigprocmask(SIG_SETMASK, &empty, nil)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD] { signal(sig, SIG_DFL) }
    }

    static func fail(_ message: String, code: DaemonExitCode, header: String? = nil) -> Never {
        if let header { StandardError.write("wsrelay: \(header)") }
        StandardError.write(header == nil ? "wsrelay: \(message)" : message)
        exit(code.rawValue)
    }
}
