import Glibc
import NIOConcurrencyHelpers

/// The classic daemon's PID file: proof of who is running, and the lock that keeps a second instance out.
///
/// The lock is taken (flock, exclusive) before the daemon forks and is inherited by the daemon, so there is no
/// window in which two instances both believe they own the file. The PID itself is written once the daemon is
/// ready, into a temporary file that is locked and then renamed over the path: a reader never sees a partial
/// PID, and whoever opens the path at any moment finds a locked inode. A file nobody holds a lock on is stale
/// and is taken over.
public final class PIDFile: Sendable {
    public enum AcquireError: Error, CustomStringConvertible {
        case alreadyRunning(path: String, pid: Int32?)
        case system(path: String, operation: String, errno: Int32)

        public var description: String {
            switch self {
            case .alreadyRunning(let path, let pid?):
                return "another wsrelay is already running as PID \(pid) (pid file \(path) is locked)"
            case .alreadyRunning(let path, nil):
                return "another wsrelay is starting (pid file \(path) is locked)"
            case .system(let path, let operation, let code):
                return "pid file \(path): \(operation) failed: \(String(cString: strerror(code)))"
            }
        }
    }

    public let path: String
    /// The descriptor whose open file description holds the lock; it is the inode currently linked at `path`.
    /// In a lock so the file is checked `Sendable` (publish and remove may run on different threads).
    private let fd: NIOLockedValueBox<Int32>

    /// The locked descriptor, which a forking daemon must keep open.
    public var descriptor: Int32 { fd.withLockedValue { $0 } }

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = NIOLockedValueBox(fd)
    }

    /// Locks the PID file, or reports the PID of the instance that holds it.
    public static func acquire(path: String) throws(AcquireError) -> PIDFile {
        for _ in 0..<5 {
            let existing = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
            if existing >= 0 {
                if flock(existing, LOCK_EX | LOCK_NB) == 0 {
                    // Stale: nobody holds it. Make sure it is still the file at `path` (not replaced meanwhile).
                    if sameInode(fd: existing, path: path) { return PIDFile(path: path, fd: existing) }
                    close(existing)
                    continue
                }
                let code = errno
                let pid = readPID(fd: existing)
                close(existing)
                if code == EWOULDBLOCK { throw .alreadyRunning(path: path, pid: pid) }
                throw .system(path: path, operation: "flock", errno: code)
            }
            guard errno == ENOENT else { throw .system(path: path, operation: "open", errno: errno) }
            let created = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
            if created < 0 {
                if errno == EEXIST { continue }  // lost a race with another starter: look again
                throw .system(path: path, operation: "create", errno: errno)
            }
            guard flock(created, LOCK_EX | LOCK_NB) == 0 else {
                let pid = readPID(fd: created)
                close(created)
                throw .alreadyRunning(path: path, pid: pid)
            }
            return PIDFile(path: path, fd: created)
        }
        throw .alreadyRunning(path: path, pid: nil)
    }

    /// Atomically publishes `pid` at `path` while keeping the lock. Call once the daemon is ready.
    public func publish(pid: Int32 = getpid()) throws(AcquireError) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        var template = Array("\(directory.isEmpty ? "/" : directory)/.wsrelay-pid.XXXXXX".utf8CString)
        let tmp = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard tmp >= 0 else { throw .system(path: path, operation: "create temporary file", errno: errno) }
        _ = fcntl(tmp, F_SETFD, FD_CLOEXEC)
        let tmpPath = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let line = Array("\(pid)\n".utf8)
        let ok = fchmod(tmp, 0o644) == 0
            && line.withUnsafeBytes({ write(tmp, $0.baseAddress, $0.count) }) == line.count
            && flock(tmp, LOCK_EX | LOCK_NB) == 0
        guard ok, rename(tmpPath, path) == 0 else {
            let code = errno
            unlink(tmpPath)
            close(tmp)
            throw .system(path: path, operation: "write", errno: code)
        }
        // The old inode is unlinked now; dropping its descriptor releases its lock.
        fd.withLockedValue { fd in
            close(fd)
            fd = tmp
        }
    }

    /// Removes the file if it is still ours, then releases the lock.
    public func remove() {
        fd.withLockedValue { fd in
            guard fd >= 0 else { return }
            if Self.sameInode(fd: fd, path: path) { unlink(path) }
            close(fd)
            fd = -1
        }
    }

    deinit {
        fd.withLockedValue { fd in
            if fd >= 0 { close(fd) }
        }
    }

    static func sameInode(fd: Int32, path: String) -> Bool {
        var a = stat()
        var b = stat()
        guard fstat(fd, &a) == 0, lstat(path, &b) == 0 else { return false }
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    static func readPID(fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self)
        return text.split(whereSeparator: { $0.isWhitespace }).first.flatMap { Int32($0) }
    }

    /// Reads the PID recorded at `path`, for tools that want to signal the daemon.
    public static func readPID(path: String) -> Int32? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readPID(fd: fd)
    }
}
