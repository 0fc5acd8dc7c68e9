import Foundation
import Testing
import WSRelayTestSupport

/// The real wsrelay binary running a config, started and stopped the way systemd would: READY=1 observed
/// on a real notify socket before the test proceeds, SIGTERM and exit status 0 at the end.
final class RunningDaemon {
    let directory: TemporaryDirectory
    let notify: NotifySocket
    let process: WSRelayProcess
    let configPath: String

    init(config: String, in directory: TemporaryDirectory, environment: [String: String] = [:]) throws {
        self.directory = directory
        notify = try NotifySocket(directory: directory)
        configPath = try directory.write("wsrelay.toml", config)
        var env = environment
        env["NOTIFY_SOCKET"] = notify.path
        process = try WSRelayProcess(["run", "--config", configPath], directory: directory, environment: env, name: "daemon")
        let startup = notify.receive(until: { $0.notifyFields["READY"] == "1" })
        guard startup.last?.notifyFields["READY"] == "1" else {
            throw DaemonFailure(message: "no READY=1; stderr:\n\(process.stderr)")
        }
    }

    var log: String { process.stderr }

    /// Runs `wsrelay ARGUMENTS --config <this daemon's config>` to completion (status, pause, reload, send...),
    /// its output under `name` (the subcommand by default) in the daemon's directory.
    func command(_ arguments: [String], name: String? = nil) throws -> (status: Int32?, stdout: String, stderr: String) {
        try WSRelayProcess.run(arguments + ["--config", configPath], directory: directory, name: name ?? arguments[0])
    }

    /// SIGTERM, then the exit status (nil if it had to be killed at the safety deadline).
    @discardableResult
    func stop() -> Int32? {
        process.signal(SIGTERM)
        return process.waitForExit()
    }

    struct DaemonFailure: Error, CustomStringConvertible { var message: String; var description: String { message } }
}

/// One envelope line of a file or subscriber stream, decoded.
struct EnvelopeLine {
    let object: [String: Any]
    var upstream: String? { object["upstream"] as? String }
    var seq: Int? { (object["seq"] as? NSNumber)?.intValue }
    var epoch: Int? { (object["epoch"] as? NSNumber)?.intValue }
    var type: String? { object["type"] as? String }
    var data: String? { object["data"] as? String }
    var event: String? { object["event"] as? String }

    /// The simulator numbers every message server-wide: `{"n":123,...}`.
    var simulatorNumber: Int? {
        if type == "binary", let data, let bytes = Data(base64Encoded: data), bytes.count >= 8 {
            return Int(bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        }
        guard let data, let inner = try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any] else { return nil }
        return (inner["n"] as? NSNumber)?.intValue
    }

    static func parse(file path: String) -> [EnvelopeLine] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]).map(EnvelopeLine.init)
        }
    }
}
