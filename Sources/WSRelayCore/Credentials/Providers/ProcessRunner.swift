import CGlibcSpawn
import Glibc

/// Runs a program (no shell) with a timeout and collects its output; blocking, so call it from a thread pool.
///
/// The child gets `/dev/null` as stdin, its own process group (so a timeout kills whatever it started too),
/// an empty signal mask and default dispositions for the signals a daemon typically blocks or ignores
/// (SIGPIPE above all), and no descriptor but its stdin, stdout and stderr: whatever the daemon inherited
/// without close-on-exec (sockets passed by systemd, a supervisor's pipe) stays out of a credential program's
/// reach and cannot be held open by it. Output beyond the limits is read and discarded so the child never
/// blocks on a full pipe.
enum ProcessRunner {
    enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        var description: String {
            switch self {
            case .exited(let code): return "exit status \(code)"
            case .signaled(let signal): return "killed by signal \(signal)"
            }
        }
    }

    struct Output: Sendable {
        var termination: Termination
        var stdout: [UInt8]
        var stderr: [UInt8]
        var stdoutTruncated: Bool
        var timedOut: Bool
    }

    struct SpawnError: Error, Sendable, CustomStringConvertible {
        var description: String
    }

    /// After the child exits, how long to wait for the pipes to close (a grandchild may hold them open).
    static let exitGrace: Duration = .milliseconds(500)

    static func run(argv: [String], timeout: Duration, stdoutLimit: Int = 1 << 20, stderrLimit: Int = 64 << 10)
        throws(SpawnError) -> Output
    {
        guard let program = argv.first, !program.isEmpty else { throw SpawnError(description: "empty command") }
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard makePipe(&outPipe) else { throw SpawnError(description: "pipe: \(errnoText())") }
        guard makePipe(&errPipe) else {
            let text = errnoText()
            close(outPipe[0]); close(outPipe[1])
            throw SpawnError(description: "pipe: \(text)")
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM, SIGXFSZ] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        )

        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArguments.append(nil)
        defer { for pointer in cArguments { free(pointer) } }

        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, program, &actions, &attributes, cArguments, environ)
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            throw SpawnError(description: "cannot run \(program): \(String(cString: strerror(rc)))")
        }
        return supervise(
            pid: pid, stdoutFD: outPipe[0], stderrFD: errPipe[0], timeout: timeout, stdoutLimit: stdoutLimit,
            stderrLimit: stderrLimit
        )
    }

    private static func supervise(
        pid: pid_t, stdoutFD: Int32, stderrFD: Int32, timeout: Duration, stdoutLimit: Int, stderrLimit: Int
    ) -> Output {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var streams: [(fd: Int32, limit: Int, data: [UInt8], truncated: Bool, open: Bool)] = [
            (stdoutFD, stdoutLimit, [], false, true), (stderrFD, stderrLimit, [], false, true),
        ]
        for stream in streams { _ = fcntl(stream.fd, F_SETFL, fcntl(stream.fd, F_GETFL) | O_NONBLOCK) }
        var termination: Termination? = nil
        var exitedAt: ContinuousClock.Instant? = nil
        var timedOut = false
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)

        func drain(_ index: Int) {
            while streams[index].open {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(streams[index].fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    let room = streams[index].limit - streams[index].data.count
                    if room > 0 { streams[index].data.append(contentsOf: buffer[0..<min(n, room)]) }
                    if n > room { streams[index].truncated = true }
                } else if n == 0 {
                    streams[index].open = false
                } else if errno == EINTR {
                    continue
                } else if errno == EAGAIN || errno == EWOULDBLOCK {
                    return
                } else {
                    streams[index].open = false
                }
            }
        }

        while true {
            if termination == nil {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    termination = decode(status)
                    exitedAt = clock.now
                }
            }
            let open = streams.indices.filter { streams[$0].open }
            if open.isEmpty, termination != nil { break }
            let now = clock.now
            if now >= deadline {
                timedOut = termination == nil
                break
            }
            if let exitedAt, now >= exitedAt + exitGrace { break }  // exited; a grandchild holds the pipes
            var limit = deadline - now
            if let exitedAt { limit = min(limit, exitedAt + exitGrace - now) }
            if termination == nil { limit = min(limit, .milliseconds(20)) }
            let milliseconds = Int32(clamping: max(1, limit.components.seconds * 1000 + limit.components.attoseconds / 1_000_000_000_000_000))
            if open.isEmpty {
                usleep(UInt32(milliseconds) * 1000)
                continue
            }
            var pollFDs = open.map { pollfd(fd: streams[$0].fd, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&pollFDs, nfds_t(pollFDs.count), milliseconds)
            if ready > 0 {
                for (k, index) in open.enumerated() where pollFDs[k].revents != 0 { drain(index) }
            }
        }

        // Whatever is still running in the child's group (the child itself on timeout, or a grandchild that
        // kept the pipes open) is killed.
        if termination == nil || streams.contains(where: \.open) {
            kill(-pid, SIGKILL)
        }
        if termination == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            termination = decode(status)
        }
        for stream in streams { close(stream.fd) }
        return Output(
            termination: termination ?? .signaled(SIGKILL), stdout: streams[0].data, stderr: streams[1].data,
            stdoutTruncated: streams[0].truncated, timedOut: timedOut
        )
    }

    /// A pipe whose ends are close-on-exec (the child gets them only through dup2).
    private static func makePipe(_ fds: inout [Int32]) -> Bool {
        guard pipe(&fds) == 0 else { return false }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return true
    }

    private static func decode(_ status: Int32) -> Termination {
        let signal = status & 0x7F
        return signal == 0 ? .exited((status >> 8) & 0xFF) : .signaled(signal)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
