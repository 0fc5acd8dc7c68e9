import Glibc
import Logging
import NIOCore

/// File-system work around a Unix socket path: replacing a stale socket file, refusing to steal a live one,
/// and giving the socket its configured mode and owner.
enum UnixSocketPath {
    struct PathProblem: Error, Sendable {
        var message: String
    }

    /// What is at `path` before binding.
    enum Existing: Sendable, Equatable {
        case nothing
        /// A socket file nobody listens on (ECONNREFUSED): safe to remove.
        case stale
        /// Another process accepts connections on it.
        case live
        case notASocket
        case unknown(String)
    }

    static func probe(_ path: String) -> Existing {
        var st = stat()
        if lstat(path, &st) != 0 {
            return errno == ENOENT ? .nothing : .unknown(SystemError.describe(errno))
        }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else { return .notASocket }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .unknown(SystemError.describe(errno)) }
        defer { close(fd) }
        let result = withSocketAddress(path) { address, length in connect(fd, address, length) }
        switch result {
        case .success(0): return .live
        case .success: break
        case .failure(let problem): return .unknown(problem.message)
        }
        switch errno {
        case ECONNREFUSED: return .stale
        case EINPROGRESS, EAGAIN: return .live  // a listener whose backlog is full is still alive
        default: return .unknown(SystemError.describe(errno))
        }
    }

    /// Makes `path` free for bind: nothing there, or a stale socket that is removed. Throws a startup error;
    /// `role` starts its message (and the log line), e.g. "unix sink" or "metrics".
    static func prepare(_ path: String, role: String = "unix sink", logger: Logger) throws(SetupError) {
        switch probe(path) {
        case .nothing:
            return
        case .stale:
            if unlink(path) != 0 && errno != ENOENT {
                throw SetupError("\(role) \(path): cannot remove the stale socket: \(SystemError.describe(errno))")
            }
            logger.info("\(role) \(path): removed a stale socket file")
        case .live:
            throw SetupError("\(role) \(path): another process is already listening on this socket (is another wsrelay running?)")
        case .notASocket:
            throw SetupError("\(role) \(path): the path exists and is not a socket; refusing to replace it")
        case .unknown(let message):
            throw SetupError("\(role) \(path): cannot check the existing socket: \(message)")
        }
    }

    static func applyMode(_ path: String, mode: UInt32, owner: String?, group: String?, role: String = "unix sink") throws(SetupError) {
        if chmod(path, mode_t(mode)) != 0 {
            throw SetupError("\(role) \(path): chmod \(String(mode, radix: 8)): \(SystemError.describe(errno))")
        }
        guard owner != nil || group != nil else { return }
        var uid = uid_t.max
        var gid = gid_t.max
        if let owner {
            guard let resolved = userID(owner) else { throw SetupError("\(role) \(path): unknown owner \"\(owner)\"") }
            uid = resolved
        }
        if let group {
            guard let resolved = groupID(group) else { throw SetupError("\(role) \(path): unknown group \"\(group)\"") }
            gid = resolved
        }
        if chown(path, uid, gid) != 0 {
            throw SetupError("\(role) \(path): chown \(owner ?? ""):\(group ?? ""): \(SystemError.describe(errno))")
        }
    }

    /// A user name or a numeric uid.
    static func userID(_ name: String) -> uid_t? {
        if let n = UInt32(name) { return n }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard rc == 0, result != nil else { return nil }
        return entry.pw_uid
    }

    static func groupID(_ name: String) -> gid_t? {
        if let n = UInt32(name) { return n }
        var entry = group()
        var result: UnsafeMutablePointer<group>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getgrnam_r(name, &entry, &buffer, buffer.count, &result)
        guard rc == 0, result != nil else { return nil }
        return entry.gr_gid
    }

    /// (device, inode) of the file at `path`, to remove only our own socket at shutdown.
    static func identity(_ path: String) -> (UInt64, UInt64)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// Binds a listening socket at `path` the one way every wsrelay listener does (socket sinks, the control
    /// socket, the metrics endpoint): a stale file is replaced and a live one refused (`prepare`), the path's
    /// length checked, `bind` called, then the socket given its mode and owner. When that last step fails the
    /// listener is closed and the file removed. Errors are one line starting with `role` and the path.
    static func bindListener<Listener>(
        _ path: String, role: String, mode: UInt32, owner: String? = nil, group: String? = nil, logger: Logger,
        bind: () async throws -> Listener, close: (Listener) async -> Void
    ) async throws(SetupError) -> (listener: Listener, owned: OwnedSocketPath?) {
        try prepare(path, role: role, logger: logger)
        if case .failure(let problem) = withSocketAddress(path, { _, _ in () }) {
            throw SetupError("\(role) \(path): \(problem.message)")
        }
        let listener: Listener
        do {
            listener = try await bind()
        } catch let error as IOError {
            throw SetupError("\(role) \(path): cannot bind: \(SystemError.describe(error.errnoCode))")
        } catch {
            throw SetupError("\(role) \(path): cannot bind: \(error)")
        }
        let owned = OwnedSocketPath(claiming: path)
        do throws(SetupError) {
            try applyMode(path, mode: mode, owner: owner, group: group, role: role)
        } catch {
            await close(listener)
            owned?.remove()
            throw error
        }
        return (listener, owned)
    }

    /// Calls `body` with a `sockaddr_un` for `path`; fails when the path is too long.
    static func withSocketAddress<T>(
        _ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T
    ) -> Result<T, PathProblem> {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            return .failure(PathProblem(message: "path too long for a Unix socket (\(bytes.count) bytes, at most \(capacity - 1))"))
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let value = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return .success(value)
    }
}

/// A socket file this process bound, remembered by identity so that removing it at shutdown never deletes a
/// file another process has put at the same path since.
struct OwnedSocketPath: Sendable, Equatable {
    var path: String
    var device: UInt64
    var inode: UInt64

    /// Records the file now at `path`; nil when there is none.
    init?(claiming path: String) {
        guard let (device, inode) = UnixSocketPath.identity(path) else { return nil }
        self.path = path
        self.device = device
        self.inode = inode
    }

    /// Unlinks the path if it is still the file that was claimed.
    func remove() {
        if let (device, inode) = UnixSocketPath.identity(path), device == self.device, inode == self.inode {
            unlink(path)
        }
    }
}
