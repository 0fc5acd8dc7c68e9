import Glibc

/// Listening sockets passed by systemd (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`), read from the
/// environment the daemon was given rather than the process's own, so tests can hand descriptors in.
///
/// Same protocol as `sd_listen_fds_with_names(3)`: descriptors start at 3, `LISTEN_PID` must be this
/// process, names are colon-separated (`FileDescriptorName=` in the .socket unit; default the unit name).
/// The environment is left alone, since several sinks (and the control socket) may each take one.
enum SocketActivation {
    struct InheritedSocket: Sendable, Equatable {
        var fd: Int32
        var name: String
    }

    static let firstDescriptor: Int32 = 3

    static func inheritedSockets(environment: [String: String], pid: Int32 = getpid()) -> [InheritedSocket] {
        guard let pidText = environment["LISTEN_PID"], Int32(pidText) == pid,
              let countText = environment["LISTEN_FDS"], let count = Int32(countText), count > 0, count < 4096
        else { return [] }
        let names = environment["LISTEN_FDNAMES"].map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) } ?? []
        return (0..<count).map { index in
            let fd = firstDescriptor + index
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            let name = Int(index) < names.count ? names[Int(index)] : "unknown"
            return InheritedSocket(fd: fd, name: name)
        }
    }

    /// The path a Unix socket is bound to, or nil (not a Unix socket, abstract, or unbound).
    static func boundPath(of fd: Int32) -> String? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard ok, address.sun_family == sa_family_t(AF_UNIX) else { return nil }
        let path = withUnsafeBytes(of: address.sun_path) { raw -> String? in
            let bytes = raw.prefix(while: { $0 != 0 })
            return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
        }
        return path
    }

    /// Nil when `fd` is a listening stream socket; otherwise what is wrong with it.
    static func problemWithListeningSocket(_ fd: Int32) -> String? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return "descriptor \(fd) is not open" }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else { return "descriptor \(fd) is not a socket" }
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0, type != Int32(SOCK_STREAM.rawValue) {
            return "descriptor \(fd) is not a stream socket (use ListenStream= in the .socket unit)"
        }
        var listening: Int32 = 0
        length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening == 0 {
            return "descriptor \(fd) is not listening"
        }
        return nil
    }
}
