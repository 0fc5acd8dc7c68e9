import ArgumentParser
import Foundation
import Logging
import WSRelayCore

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Options every subcommand that reads the config shares.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Config file. Default: $WSRELAY_CONFIG, else \(LaunchOptions.defaultConfigPath).",
        valueName: "path"))
    var config: String?
}

struct WSRelayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsrelay",
        abstract: "Keeps upstream WebSocket connections alive and forwards every message to local sinks.",
        discussion: """
            Runs in the foreground under systemd (Type=notify) by default, or as a classic daemon with --daemon.

            Exit status: 0 success; 1 runtime or startup failure; 64 usage error; 69 daemon unreachable; 78 invalid configuration.
            """,
        version: WSRelayVersion.string,
        subcommands: [Run.self, CheckConfig.self, TailCommand.self, StatusCommand.self, ReconnectCommand.self, PauseCommand.self, ResumeCommand.self,
                      ReloadCommand.self, RefreshCredentialCommand.self, SendCommand.self, UnsendCommand.self, DemoCommand.self,
                      ProbeCommand.self, InitCommand.self],
        defaultSubcommand: Run.self
    )
}

/// `wsrelay run` is special: it must fork before any thread exists, so main.swift drives it in two halves
/// (`Launcher.prepare`, synchronous; then `Daemon.run`, async) instead of through `run()`.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon (the default subcommand).",
        discussion: """
            Signals: SIGTERM/SIGINT shut down gracefully (a second one exits at once); SIGHUP reloads the
            config and reopens log files; SIGPIPE is ignored.
            """
    )

    @OptionGroup var configOption: ConfigOption

    @Flag(name: .long, help: "Detach as a classic daemon (double fork, setsid); exit once it is ready.")
    var daemon = false

    @Option(name: .long, help: ArgumentHelp(
        "PID file, locked while running. Default: [daemon] pid_file; with --daemon \(LaunchOptions.defaultDaemonPIDFile).",
        valueName: "path"))
    var pidFile: String?

    @Option(name: .long, help: ArgumentHelp(
        "Log level, overriding [daemon] log_level: trace, debug, info, notice, warning, error, critical.",
        valueName: "level"))
    var logLevel: Logger.Level?

    func launchOptions(environment: [String: String]) -> LaunchOptions {
        LaunchOptions(configPath: configOption.config, daemonize: daemon, pidFile: pidFile, logLevel: logLevel,
                      environment: environment)
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the config; print the effective config (secrets redacted) or every error.",
        discussion: "Exit status 0 when valid, 78 when not. Warnings go to stderr."
    )

    @OptionGroup var configOption: ConfigOption

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let path = LaunchOptions(configPath: configOption.config, daemonize: false, pidFile: nil, logLevel: nil,
                                 environment: environment).configPath
        switch ConfigLoader.load(path: path, environment: environment) {
        case .success(let loaded):
            for warning in loaded.warnings { printError("\(warning)") }
            print("# effective configuration of \(path) (secrets redacted)")
            print(ConfigRenderer.render(loaded.configuration), terminator: "")
        case .failure(let error):
            printError("\(error)")
            throw ExitCode(DaemonExitCode.config.rawValue)
        }
    }
}


