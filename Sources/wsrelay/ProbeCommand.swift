import ArgumentParser
import Foundation
import WSRelayCore

/// `wsrelay probe NAME|URL`: one connection attempt to one upstream, stage by stage, for the operator whose
/// upstream will not come up. The stages and verdicts live in WSRelayCore/Probe; this is the command line.
struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Diagnose one upstream stage by stage: DNS, TCP, proxy, TLS, credentials, upgrade, first message, ping.",
        discussion: """
            NAME probes that upstream of the config with all its settings (headers, subprotocols, TLS, proxy, \
            auth); a ws:// or wss:// URL probes it with default settings (proxy from the environment). Each \
            stage is printed when it completes, with its time and verdict; the last line says whether the \
            upstream is usable and, if not, which stage failed. Tokens are shown only by fingerprint. A token \
            is obtained exactly as the daemon would (an oauth2 refresh may rotate the refresh token, which is \
            then saved in state_dir).
            Exit status: 0 usable (warnings allowed); 1 a stage failed; 64 usage error (bad URL, unknown \
            upstream, bad --wait); 78 the config needed for NAME is missing or invalid.
            """
    )

    @Argument(help: ArgumentHelp("An upstream name from the config, or a ws:// or wss:// URL.", valueName: "name-or-url"))
    var target: String

    @OptionGroup var configOption: ConfigOption

    @Option(name: .long, help: ArgumentHelp("How long to wait for the first message after the upgrade.", valueName: "duration"))
    var wait: String = "5s"

    @Flag(name: .long, help: "Print one JSON document (the whole report) instead of the stage lines.")
    var json = false

    func validate() throws {
        guard DurationParser.parse(wait) != nil else {
            throw ValidationError("--wait: expected a duration such as 5s, 500ms or 1m, got \"\(wait)\"")
        }
    }

    func run() throws {
        throw ValidationError("probe runs asynchronously; this is dispatched by main.swift")
    }

    func execute() async -> Int32 {
        let environment = ProcessInfo.processInfo.environment
        let configPath = LaunchOptions(configPath: configOption.config, daemonize: false, pidFile: nil, logLevel: nil,
                                       environment: environment).configPath
        let probeTarget: ProbeTarget
        switch ProbeTarget.resolve(argument: target, configPath: configPath, environment: environment,
                                   load: { ConfigLoader.load(path: $0, environment: environment) }) {
        case .failure(let error):
            printError("wsrelay probe: \(error)")
            return error.status
        case .success(let resolved):
            probeTarget = resolved
        }
        var options = ProbeRunner.Options()
        options.wait = DurationParser.parse(wait) ?? .seconds(5)
        let runner = ProbeRunner(target: probeTarget, options: options, environment: environment)
        let json = self.json
        if !json {
            var header = ProbeRendering.header(ProbeReport(target: probeTarget.label))
            if probeTarget.fromConfig { header += " (config \(configPath))" }
            if let proxy = probeTarget.proxy { header += " via proxy \(proxy)" }
            writeOut(header)
        }
        let report = await runner.run { stage in
            if !json { writeOut(ProbeRendering.text(stage)) }
        }
        writeOut(json ? ProbeRendering.json(report) : report.conclusion)
        return report.exitStatus
    }
}

/// Unbuffered, so each stage shows up the moment it completes even when stdout is a pipe.
private func writeOut(_ line: String) {
    try? FileHandle.standardOutput.write(contentsOf: Data((line + "\n").utf8))
}
