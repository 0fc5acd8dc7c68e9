import Glibc

/// The file descriptor one writer writes to, and the file-system operations around it: open with an exact
/// mode, notice that the path now names another file (logrotate, `mv`, `rm`), reopen, rotate, sync.
///
/// Used only from the sink's writer thread (plus `open` at startup); every call is a plain blocking syscall.
final class FileOutput {
    enum Target: Sendable, Equatable {
        case path(String, mode: UInt32)
        /// An inherited descriptor (stdout); never reopened, rotated or synced.
        case descriptor(Int32, name: String)
    }

    let target: Target
    private(set) var fd: Int32 = -1
    private var device: UInt64 = 0
    private var inode: UInt64 = 0
    /// Bytes in the current file (from fstat at open, plus what we wrote), for `rotate_size`.
    private(set) var size: Int = 0

    init(target: Target) {
        self.target = target
        if case .descriptor(let fd, _) = target { self.fd = fd }
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
        let flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC
        var created = true
        var newFD = Glibc.open(path, flags | O_EXCL, mode_t(mode))
        if newFD < 0 && errno == EEXIST {
            created = false
            newFD = Glibc.open(path, flags, mode_t(mode))
        }
        guard newFD >= 0 else { throw SystemError(errno: errno, operation: "open") }
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
    }

    func close() {
        guard case .path = target, fd >= 0 else { return }
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

    /// One writev(2). Returns bytes written (0 when a non-blocking descriptor is full), or throws the errno.
    func write(_ vectors: UnsafeMutablePointer<iovec>, count: Int) throws(SystemError) -> Int {
        while true {
            let n = writev(fd, vectors, Int32(count))
            if n >= 0 {
                size += n
                return n
            }
            let e = errno
            switch e {
            case EINTR:
                continue
            case EAGAIN:
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 100)
                return 0
            default:
                throw SystemError(errno: e, operation: "write")
            }
        }
    }

    func sync() throws(SystemError) {
        guard case .path = target, fd >= 0 else { return }
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
        ENOTSOCK: "ENOTSOCK", ELOOP: "ELOOP",
    ]
}
