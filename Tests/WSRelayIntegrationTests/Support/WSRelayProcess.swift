import Foundation
import WSRelayTestSupport

/// The real `wsrelay` binary, started as a child process with its output captured to files.
final class WSRelayProcess {
    static var binaryPath: String {
        if let path = ProcessInfo.processInfo.environment["WSRELAY_BINARY"], !path.isEmpty { return path }
        // The test bundle sits next to the products in the build directory.
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("wsrelay").path
    }

    let child: ChildProcess
    let stdoutPath: String
    let stderrPath: String

    /// - Parameter passing: descriptors that land at 3, 4, ... in the child (see `ChildProcess`).
    init(_ arguments: [String], directory: TemporaryDirectory, environment: [String: String] = [:], name: String = "wsrelay",
         executable: String = WSRelayProcess.binaryPath, passing: [Int32] = []) throws {
        stdoutPath = directory.file("\(name).stdout")
        stderrPath = directory.file("\(name).stderr")
        var env = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID",
                    "LISTEN_FDNAMES", "FDSTORE", "CREDENTIALS_DIRECTORY", "WSRELAY_CONFIG", "HTTPS_PROXY", "https_proxy"] {
            env[key] = nil
        }
        env.merge(environment) { _, new in new }
        child = try ChildProcess([executable] + arguments, environment: env, stdout: stdoutPath, stderr: stderrPath,
                                 passing: passing)
    }

    var pid: Int32 { child.pid }
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ signal: Int32) { child.signal(signal) }

    /// Waits for exit: the exit code, or 128 + the signal that ended it; nil if still running at the safety
    /// deadline (then it is killed).
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(30)) -> Int32? { child.waitForExit(timeout: timeout) }

    /// Runs another program (e.g. `setpriv` wrapping wsrelay) to completion.
    static func runExternal(_ executable: String, _ arguments: [String], directory: TemporaryDirectory,
                            name: String = "external") throws -> (status: Int32?, stdout: String, stderr: String) {
        let p = try WSRelayProcess(arguments, directory: directory, name: name, executable: executable)
        let status = p.waitForExit()
        return (status, p.stdout, p.stderr)
    }

    /// Runs to completion (for short commands such as `check-config`).
    static func run(_ arguments: [String], directory: TemporaryDirectory, environment: [String: String] = [:],
                    name: String = "cmd") throws -> (status: Int32?, stdout: String, stderr: String) {
        let p = try WSRelayProcess(arguments, directory: directory, environment: environment, name: name)
        let status = p.waitForExit()
        return (status, p.stdout, p.stderr)
    }
}
