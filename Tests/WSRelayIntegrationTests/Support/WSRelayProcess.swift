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

    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(_ arguments: [String], directory: TemporaryDirectory, environment: [String: String] = [:], name: String = "wsrelay",
         executable: String = WSRelayProcess.binaryPath) throws {
        stdoutPath = directory.file("\(name).stdout")
        stderrPath = directory.file("\(name).stderr")
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID",
                    "LISTEN_FDNAMES", "CREDENTIALS_DIRECTORY", "WSRELAY_CONFIG", "HTTPS_PROXY", "https_proxy"] {
            env[key] = nil
        }
        env.merge(environment) { _, new in new }
        process.environment = env
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ signal: Int32) { kill(pid, signal) }

    /// Waits for exit; nil if the process is still running at the safety deadline (then it is killed).
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(30)) -> Int32? {
        if !eventually(timeout: timeout, { !process.isRunning }) {
            kill(pid, SIGKILL)
            Self.awaitKilled(process)
            return nil
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            Self.awaitKilled(process)
        }
    }

    /// Bounded, unlike `waitUntilExit()`: under ThreadSanitizer Foundation once never noticed that a child had
    /// exited (a zombie nobody reaped), and the whole test process hung there.
    private static func awaitKilled(_ process: Process) {
        _ = eventually(timeout: .seconds(10)) { !process.isRunning }
    }

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
