import Glibc

/// The file descriptor one writer writes to, and the file-system operations around it: open with an exact
/// mode, notice that the path now names another file (logrotate, `mv`, `rm`), reopen, rotate, sync.
///
/// Used only from the sink's writer thread (plus `open` at startup).
///
/// Writes never block indefinitely: a reader that stops reading a FIFO, a pipe or a socket must not hold the
/// writer inside `writev` (it could then neither stop nor let a forced exit through). Paths are opened with
/// `O_NONBLOCK` (no effect on regular files); an inherited stdout that is a pipe, FIFO or terminal is
/// reopened through `/proc/self/fd` as a non-blocking open file description of our own (setting
/// `O_NONBLOCK` on the shared one would change it for the shell or supervisor that passed it); a socket
/// (systemd's journal stream) is written with `sendmsg(MSG_DONTWAIT)`. A full descriptor writes 0 bytes and
/// the writer waits in `waitUntilWritable`, outside any gate.
final class FileOutput {
    enum Target: Sendable, Equatable {
        case path(String, mode: UInt32)
        /// An inherited descriptor (stdout); never reopened, rotated or synced.
        case descriptor(Int32, name: String)
    }

    let target: Target
    private(set) var fd: Int32 = -1
    /// True when `fd` is a descriptor we opened for an inherited target (closed with us).
    private var ownsInheritedReopen = false
    /// True when `fd` is a socket: written with `sendmsg(MSG_DONTWAIT)`.
    private var isSocket = false
    private var device: UInt64 = 0
    private var inode: UInt64 = 0
    /// Bytes in the current file (from fstat at open, plus what we wrote), for `rotate_size`.
    private(set) var size: Int = 0

    init(target: Target) {
        self.target = target
        if case .descriptor(let fd, _) = target { adopt(fd) }
    }

    /// Makes an inherited descriptor non-blocking without touching the open file description we share.
    private func adopt(_ inherited: Int32) {
        fd = inherited
        var st = stat()
        guard fstat(inherited, &st) == 0 else { return }
        switch st.st_mode & S_IFMT {
        case S_IFSOCK:
            isSocket = true
        case S_IFIFO, S_IFCHR:
            let reopened = Glibc.open("/proc/self/fd/\(inherited)", O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            if reopened >= 0 {
                fd = reopened
                ownsInheritedReopen = true
            }
        default:
            break  // a regular file: writes return after the disk took them
        }
    }

    var isOpen: Bool { fd >= 0 }

    var path: String? {
        if case .path(let path, _) = target { return path }
        return nil
    }

    var displayName: String {
        switch target {
        case .path(let path, _): return path
        case .descriptor(_, let name): return name
        }
    }

    /// Opens (creating with the configured mode if needed). Throws the errno.
    func open() throws(SystemError) {
        guard case .path(let path, let mode) = target else { return }
        let flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK
        var created = true
        var newFD = Glibc.open(path, flags | O_EXCL, mode_t(mode))
        if newFD < 0 && errno == EEXIST {
            created = false
            newFD = Glibc.open(path, flags, mode_t(mode))
        }
        guard newFD >= 0 else {
            // ENXIO: a FIFO nobody has opened for reading (a blocking open would wait for one forever).
            throw SystemError(errno: errno, operation: errno == ENXIO ? "open (a FIFO without a reader)" : "open")
        }
        if created {
            // open(2) applies the umask; the configured mode is the mode the file gets.
            _ = fchmod(newFD, mode_t(mode))
        }
        var st = stat()
        guard fstat(newFD, &st) == 0 else {
            let e = errno
            Glibc.close(newFD)
            throw SystemError(errno: e, operation: "fstat")
        }
        if fd >= 0 { Glibc.close(fd) }
        fd = newFD
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int(st.st_size)
        tornLineRepaired = nil
        if (st.st_mode & S_IFMT) == S_IFREG && size > 0 {
            tornLineRepaired = terminateTornLastLine(path: path)
        }
    }

    /// Set by `open` when the file did not end on a whole line (a crash or a power loss cut the last write):
    /// how many bytes the torn line has. `open` has already ended it with a newline, so the next message
    /// starts a line of its own instead of being glued to the fragment; the caller logs it.
    private(set) var tornLineRepaired: Int?

    /// Looks at the end of the file just opened; if its last byte is not a newline, appends one and returns
    /// the fragment's length (counted back to the previous newline, at most `tornLineScanLimit`).
    private func terminateTornLastLine(path: String) -> Int? {
        let reader = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard reader >= 0 else { return nil }  // write-only permission: nothing to check with
        defer { Glibc.close(reader) }
        let scan = min(size, Self.tornLineScanLimit)
        var tail = [UInt8](repeating: 0, count: scan)
        let n = tail.withUnsafeMutableBytes { pread(reader, $0.baseAddress, scan, off_t(size - scan)) }
        guard n == scan, let last = tail.last, last != UInt8(ascii: "\n") else { return nil }
        var newline = UInt8(ascii: "\n")
        guard Glibc.write(fd, &newline, 1) == 1 else { return nil }
        size += 1
        if let previous = tail.lastIndex(of: UInt8(ascii: "\n")) { return scan - previous - 1 }
        return scan
    }

    static let tornLineScanLimit = 1 << 20

    func close() {
        guard fd >= 0 else { return }
        if case .descriptor = target {
            guard ownsInheritedReopen else { return }
            ownsInheritedReopen = false
        }
        Glibc.close(fd)
        fd = -1
    }

    /// True when the path no longer names the open file: renamed away, deleted, or replaced.
    func pathNamesAnotherFile() -> Bool {
        guard case .path(let path, _) = target, fd >= 0 else { return false }
        var st = stat()
        if stat(path, &st) != 0 {
            return errno == ENOENT || errno == ENOTDIR
        }
        return UInt64(st.st_dev) != device || UInt64(st.st_ino) != inode
    }

    /// One writev(2). Returns bytes written (0 when a non-blocking descriptor is full: then call
    /// `waitUntilWritable`), or throws the errno.
    func write(_ vectors: UnsafeMutablePointer<iovec>, count: Int) throws(SystemError) -> Int {
        while true {
            let n: Int
            if isSocket {
                var message = msghdr()
                message.msg_iov = vectors
                message.msg_iovlen = count
                n = sendmsg(fd, &message, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            } else {
                n = writev(fd, vectors, Int32(count))
            }
            if n >= 0 {
                size += n
                return n
            }
            let e = errno
            switch e {
            case EINTR:
                continue
            case EAGAIN:
                return 0
            default:
                throw SystemError(errno: e, operation: "write")
            }
        }
    }

    /// Waits (at most `milliseconds`) for a full pipe or socket to take data again.
    func waitUntilWritable(milliseconds: Int32) {
        guard fd >= 0 else { return }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        _ = poll(&p, 1, milliseconds)
    }

    /// A second descriptor for the same open file (for `BackgroundFileSync`); -1 when there is no file or no
    /// descriptor left.
    func duplicateForSync() -> Int32 {
        guard case .path = target, fd >= 0 else { return -1 }
        return fcntl(fd, F_DUPFD_CLOEXEC, 0)
    }

    func sync() throws(SystemError) {
        guard case .path = target, fd >= 0 else { return }
        try Self.sync(fd)
    }

    /// `fdatasync`, where a file that cannot be synced (EINVAL, EROFS) is not an error. Also used by
    /// `BackgroundFileSync` on its duplicate descriptor.
    static func sync(_ fd: Int32) throws(SystemError) {
        if fdatasync(fd) != 0 && errno != EINVAL && errno != EROFS {
            throw SystemError(errno: errno, operation: "fsync")
        }
    }

    /// path -> path.1 -> ... -> path.keep (the oldest is overwritten), then opens a fresh file at path.
    func rotate(keep: Int) throws(SystemError) {
        guard case .path(let path, _) = target else { return }
        close()
        if keep <= 0 {
            unlink(path)
        } else {
            if keep >= 2 {
                for index in stride(from: keep - 1, through: 1, by: -1) {
                    if rename("\(path).\(index)", "\(path).\(index + 1)") != 0 && errno != ENOENT {
                        throw SystemError(errno: errno, operation: "rename \(path).\(index)")
                    }
                }
            }
            if rename(path, "\(path).1") != 0 && errno != ENOENT {
                throw SystemError(errno: errno, operation: "rename")
            }
        }
        try open()
    }
}

/// An errno with the call that produced it, rendered like `No space left on device (ENOSPC)`.
struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    var errno: Int32
    var operation: String

    var description: String { "\(operation): \(Self.describe(errno))" }

    static func describe(_ code: Int32) -> String {
        let message = String(cString: strerror(code))
        if let name = names[code] { return "\(message) (\(name))" }
        return "\(message) (errno \(code))"
    }

    private static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EBADF: "EBADF", EAGAIN: "EAGAIN", EACCES: "EACCES",
        EEXIST: "EEXIST", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", EMFILE: "EMFILE",
        ENFILE: "ENFILE", EFBIG: "EFBIG", ENOSPC: "ENOSPC", EROFS: "EROFS", EPIPE: "EPIPE",
        ENAMETOOLONG: "ENAMETOOLONG", EDQUOT: "EDQUOT", EADDRINUSE: "EADDRINUSE", ECONNREFUSED: "ECONNREFUSED",
        ENOTSOCK: "ENOTSOCK", ELOOP: "ELOOP", ENXIO: "ENXIO",
    ]
}
