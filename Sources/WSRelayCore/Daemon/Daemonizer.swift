import Glibc
import NIOConcurrencyHelpers

/// Turns the process into a classic Unix daemon while keeping the launcher honest about startup.
///
/// `fork()` in a process that already has threads is undefined behaviour (only the forking thread survives;
/// locks held by the others stay locked forever), so this must run before SwiftNIO, Dispatch or the Swift
/// concurrency pool has started any thread; `daemonize` checks that and refuses otherwise.
///
/// The launching process waits on a readiness pipe and exits 0 only once the daemon reports it is ready, or
/// exits non-zero printing the daemon's own startup error, so `wsrelay --daemon && echo up` means what it says.
public enum Daemonizer {
    /// The daemon's end of the readiness pipe.
    public final class ReadinessPipe: Sendable {
        private let fd: NIOLockedValueBox<Int32>

        init(fd: Int32) { self.fd = NIOLockedValueBox(fd) }

        /// Reports success; the launcher prints nothing and exits 0.
        public func ready() { finish(message: "R") }

        /// Reports a startup error; the launcher prints `message` to its stderr and exits with `code`.
        public func failed(_ message: String, code: DaemonExitCode) { finish(message: "E\(code.rawValue) \(message)") }

        /// Only the first report counts; the descriptor is closed after it.
        private func finish(message: String) {
            fd.withLockedValue { fd in
                guard fd >= 0 else { return }
                let bytes = Array(message.utf8)
                _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
                fd = -1
            }
        }
    }

    public enum DaemonizeError: Error, CustomStringConvertible {
        case threadsAlreadyRunning(Int)
        case system(String, Int32)

        public var description: String {
            switch self {
            case .threadsAlreadyRunning(let n):
                return "refusing to fork: the process already has \(n) threads"
            case .system(let op, let code):
                return "\(op) failed: \(String(cString: strerror(code)))"
            }
        }
    }

    /// Number of threads of this process, from /proc.
    public static func threadCount() -> Int {
        guard let dir = opendir("/proc/self/task") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        return count
    }

    /// Forks twice. Returns only in the daemon, with its end of the readiness pipe; the launcher process stays
    /// in here until the daemon reports, then exits. Every inherited descriptor above stderr is closed in the
    /// daemon except `keeping` (the PID file lock): a daemon must not hold its launcher's pipes open, or
    /// whoever waits for the launcher's output would wait for the daemon's exit instead.
    public static func daemonize(keeping: Set<Int32> = []) throws(DaemonizeError) -> ReadinessPipe {
        let threads = threadCount()
        guard threads == 1 else { throw .threadsAlreadyRunning(threads) }
        fflush(nil)  // or the daemon would print what the launcher had buffered, a second time

        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw .system("pipe", errno) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        let (readEnd, writeEnd) = (fds[0], fds[1])

        let first = fork()
        if first < 0 { throw .system("fork", errno) }
        if first > 0 {
            close(writeEnd)
            var status: Int32 = 0
            _ = waitpid(first, &status, 0)  // the intermediate child exits at once
            exit(launcherExitCode(readingFrom: readEnd))
        }

        // Intermediate child: new session, then fork again so the daemon can never reacquire a terminal.
        close(readEnd)
        guard setsid() >= 0 else { reportAndExit(writeEnd, "setsid", errno) }
        let second = fork()
        if second < 0 { reportAndExit(writeEnd, "fork", errno) }
        if second > 0 { _exit(0) }

        // The daemon.
        closeInheritedDescriptors(keeping: keeping.union([writeEnd]))
        umask(0o027)
        _ = chdir("/")
        let devNull = open("/dev/null", O_RDWR)
        if devNull >= 0 {
            dup2(devNull, STDIN_FILENO)
            dup2(devNull, STDOUT_FILENO)
            dup2(devNull, STDERR_FILENO)
            if devNull > STDERR_FILENO { close(devNull) }
        }
        return ReadinessPipe(fd: writeEnd)
    }

    static func closeInheritedDescriptors(keeping: Set<Int32>) {
        guard let dir = opendir("/proc/self/fd") else { return }
        let own = dirfd(dir)
        var doomed: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let fd = Int32(name), fd > STDERR_FILENO, fd != own, !keeping.contains(fd) { doomed.append(fd) }
        }
        closedir(dir)
        for fd in doomed { close(fd) }
    }

    private static func reportAndExit(_ fd: Int32, _ operation: String, _ code: Int32) -> Never {
        let pipe = ReadinessPipe(fd: fd)
        pipe.failed("\(operation) failed: \(String(cString: strerror(code)))", code: .failure)
        _exit(1)
    }

    /// Waits for the daemon's verdict and turns it into the launcher's exit status and output.
    private static func launcherExitCode(readingFrom fd: Int32) -> Int32 {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { data.append(contentsOf: chunk[0..<n]); continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        let text = String(decoding: data, as: UTF8.self)
        if text == "R" { return 0 }
        if text.first == "E" {
            let body = text.dropFirst()
            let space = body.firstIndex(of: " ") ?? body.endIndex
            let code = Int32(body[..<space]) ?? 1
            let message = body[space...].drop(while: { $0 == " " })
            StandardError.write("wsrelay: \(message)")
            return code == 0 ? 1 : code
        }
        StandardError.write("wsrelay: the daemon exited during startup without reporting why (see its log)")
        return DaemonExitCode.failure.rawValue
    }
}
