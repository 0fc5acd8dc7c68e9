import CGlibcSpawn
import Foundation
import WSRelayTestSupport

/// A program the tests start, signal and wait for, spawned with `posix_spawn` rather than Foundation's
/// `Process`.
///
/// Why not `Process`: on Linux it learns that a child exited when a socket pair's other end, which the child
/// holds, reaches end-of-file. That end is not close-on-exec, so a program another test starts at the same
/// moment can inherit it; the exit is then noticed only when that program exits too. In CI a `check-config`
/// "ran" for 30 s and a daemon seemed to ignore its second SIGTERM while a long-lived sibling held their
/// sockets (reproduced: a `/bin/true` noticed after the 3 s of a `sleep 3` spawned beside it).
///
/// Here every child gets stdin from `/dev/null`, stdout and stderr into files, the descriptors it is passed
/// at 3, 4, ... and nothing else (everything above is closed in the child), an empty signal mask, default
/// signal dispositions and a process group of its own. Its exit is learned with `waitpid` on its pid.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// - Parameters:
    ///   - argv: the program (a path, or a name looked up in PATH) and its arguments.
    ///   - environment: the child's whole environment.
    ///   - stdout: a file for stdout, created or truncated.
    ///   - stderr: a file for stderr; nil sends it to stdout's file.
    ///   - passing: descriptors that land at 3, 4, ... in the child.
    init(_ argv: [String], environment: [String: String] = ProcessInfo.processInfo.environment, stdout: String,
         stderr: String? = nil, passing: [Int32] = []) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if let stderr {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        // Copies above any target number first, so that no dup2 overwrites a descriptor still to be passed.
        let copies = passing.map { fcntl($0, F_DUPFD_CLOEXEC, 1000) }
        defer { for copy in copies where copy >= 0 { close(copy) } }
        guard !copies.contains(where: { $0 < 0 }) else { throw POSIXError(.init(rawValue: errno) ?? .EBADF) }
        for (index, copy) in copies.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, copy, 3 + Int32(index))
        }
        posix_spawn_file_actions_addclosefrom_np(&actions, 3 + Int32(passing.count))

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var all = sigset_t()
        sigfillset(&all)
        sigdelset(&all, SIGKILL)
        sigdelset(&all, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in cArguments { free(pointer) }
            for pointer in cEnvironment { free(pointer) }
        }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, &attributes, cArguments, cEnvironment)
        guard rc == 0 else {
            throw RunningDaemon.DaemonFailure(message: "cannot start \(argv[0]): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
    }

    /// The exit code, or 128 + the signal that ended it (the shell's convention); nil while it runs.
    var status: Int32? {
        lock.lock()
        defer { lock.unlock() }
        if exitStatus == nil {
            var raw: Int32 = 0
            let reaped = waitpid(pid, &raw, WNOHANG)
            if reaped == pid {
                exitStatus = (raw & 0x7F) == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
            } else if reaped < 0, errno == ECHILD {
                exitStatus = -1  // reaped elsewhere: gone, its status unknown
            }
        }
        return exitStatus
    }

    var isRunning: Bool { status == nil }

    func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits for exit; at the safety deadline kills it and returns nil.
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(30)) -> Int32? {
        if eventually(timeout: timeout, { !isRunning }) { return status }
        stop()
        return nil
    }

    /// SIGKILL and reap (bounded: a child stuck in the kernel is left behind rather than hanging the tests).
    func stop() {
        guard isRunning else { return }
        kill(pid, SIGKILL)
        _ = eventually(timeout: .seconds(10)) { !isRunning }
    }

    deinit { stop() }

    /// Runs a short command to completion; its exit status (nil if killed at the deadline) and its stdout and
    /// stderr together.
    static func run(_ argv: [String], timeout: Duration = .seconds(60)) throws -> (status: Int32?, output: String) {
        let path = NSTemporaryDirectory() + "wsrelay-child-\(UUID().uuidString).out"
        defer { unlink(path) }
        let child = try ChildProcess(argv, stdout: path)
        let status = child.waitForExit(timeout: timeout)
        return (status, (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
    }
}
