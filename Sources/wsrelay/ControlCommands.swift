import ArgumentParser
import Foundation
import WSRelayCore

/// Where the control socket is: --socket, else `[daemon] control_socket` of the config, else the default.
struct ControlSocketOption: ParsableArguments {
    @OptionGroup var configOption: ConfigOption

    @Option(name: .long, help: ArgumentHelp(
        "Control socket. Default: [daemon] control_socket of the config (\(DaemonSettings().controlSocket)).",
        valueName: "path"))
    var socket: String?

    func socketPath() -> String {
        if let socket { return socket }
        let environment = ProcessInfo.processInfo.environment
        let path = LaunchOptions(configPath: configOption.config, daemonize: false, pidFile: nil, logLevel: nil,
                                 environment: environment).configPath
        return ConfigLoader.controlSocketPath(path: path, environment: environment)
    }

    /// Sends one request; prints the one-line reason and exits 69 when the daemon cannot be reached.
    func send(_ request: ControlRequest) throws -> ControlReply {
        do {
            return try ControlClient.send(request, socketPath: socketPath())
        } catch {
            printError("wsrelay: \(error.description)")
            throw ExitCode(error.exitCode)
        }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the state of every upstream, credential, sink and subscriber.",
        discussion: "Exit status 0 when every upstream is connected, 1 when some are not, 69 when the daemon cannot be reached."
    )

    @OptionGroup var control: ControlSocketOption

    @Flag(name: .long, help: "Print the daemon's raw JSON reply (one line), for scripts.")
    var json = false

    func run() throws {
        let reply = try control.send(.status)
        guard reply.ok, let report = reply.status else {
            printError("wsrelay: \(reply.error ?? "the daemon sent no status")")
            throw ExitCode(DaemonExitCode.failure.rawValue)
        }
        if json {
            print(String(decoding: try ControlReplyPrinter.json(report), as: UTF8.self))
        } else {
            print(StatusTable.render(report), terminator: "")
        }
        if report.upstreams.contains(where: { $0.state != "open" }) { throw ExitCode(DaemonExitCode.failure.rawValue) }
    }
}

/// `reconnect`, `pause`, `resume` NAME, `reload` and `refresh-credential` NAME: one request, the daemon's
/// sentence printed, exit 0 when it did it.
protocol ControlActionCommand: ParsableCommand {
    var control: ControlSocketOption { get }
    var request: ControlRequest { get }
}

extension ControlActionCommand {
    func run() throws {
        let reply = try control.send(request)
        if reply.ok {
            print(reply.message ?? "ok")
        } else {
            printError("wsrelay: \(reply.error ?? "failed")")
            throw ExitCode(DaemonExitCode.failure.rawValue)
        }
    }
}

struct ReconnectCommand: ControlActionCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconnect", abstract: "Close one upstream's connection (1000) and connect it again at once.")
    @OptionGroup var control: ControlSocketOption
    @Argument(help: "Upstream name.") var name: String
    var request: ControlRequest { .reconnect(upstream: name) }
}

struct PauseCommand: ControlActionCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Close one upstream's connection (1000) and stop reconnecting until resume.")
    @OptionGroup var control: ControlSocketOption
    @Argument(help: "Upstream name.") var name: String
    var request: ControlRequest { .pause(upstream: name) }
}

struct ResumeCommand: ControlActionCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Let a paused upstream connect again.")
    @OptionGroup var control: ControlSocketOption
    @Argument(help: "Upstream name.") var name: String
    var request: ControlRequest { .resume(upstream: name) }
}

struct ReloadCommand: ControlActionCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Reload the config as a diff (like SIGHUP), and print what changed or why nothing did.")
    @OptionGroup var control: ControlSocketOption
    var request: ControlRequest { .reload }
}

struct RefreshCredentialCommand: ControlActionCommand {
    static let configuration = CommandConfiguration(
        commandName: "refresh-credential", abstract: "Fetch a new token for one credential now.")
    @OptionGroup var control: ControlSocketOption
    @Argument(help: "Credential name ([auth.NAME]).") var name: String
    var request: ControlRequest { .refreshCredential(name: name) }
}

struct SendCommand: ControlActionCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send one message on an upstream's connection (and, with --persist, on every later connect).",
        discussion: """
            Exit status 0 when the daemon wrote it to the open connection (or persisted it while not connected), \
            1 when it refused (unknown upstream, not connected and not persisted, too large), 69 when the daemon \
            cannot be reached. A message that is not persisted is never queued for a later connection.
            """)
    @OptionGroup var control: ControlSocketOption
    @Argument(help: "Upstream name.") var name: String
    @Argument(help: "The message: text, or base64 with --binary.") var message: String
    @Flag(name: .long, help: "MESSAGE is base64; send it as a binary message.") var binary = false
    @Flag(name: .long, help: "Also send it after the subscribe list on every later connect (kept in state_dir; see unsend).")
    var persist = false

    func validate() throws {
        if binary, Data(base64Encoded: message) == nil { throw ValidationError("--binary: the message is not valid base64") }
    }

    var request: ControlRequest {
        .send(UpstreamSend(upstream: name, message: binary ? .binary([UInt8](Data(base64Encoded: message) ?? Data())) : .text(message),
                           persist: persist))
    }
}

struct UnsendCommand: ControlActionCommand {
    static let configuration = CommandConfiguration(
        commandName: "unsend", abstract: "Remove a message persisted with send --persist (wsrelay status lists them).")
    @OptionGroup var control: ControlSocketOption
    @Argument(help: "Upstream name.") var name: String
    @Argument(help: "The persisted message exactly as sent: text, or base64 with --binary.") var message: String
    @Flag(name: .long, help: "MESSAGE is base64 of a binary message.") var binary = false

    func validate() throws {
        if binary, Data(base64Encoded: message) == nil { throw ValidationError("--binary: the message is not valid base64") }
    }

    var request: ControlRequest {
        .unsend(upstream: name, message: binary ? .binary([UInt8](Data(base64Encoded: message) ?? Data())) : .text(message))
    }
}
