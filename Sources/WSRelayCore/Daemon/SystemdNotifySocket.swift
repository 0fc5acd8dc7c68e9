import Glibc

/// The datagram socket to the service manager's `NOTIFY_SOCKET`, opened once when the daemon starts and kept
/// for its whole life.
///
/// Why not libsystemd's `sd_notify` for every message: it opens a new socket per call, so when the process is
/// out of descriptors (EMFILE) every notification fails — WATCHDOG=1 included, and systemd then kills a
/// daemon that is otherwise coping (the descriptor-exhaustion test saw exactly that risk). Sending on a socket
/// opened at start needs no descriptor later. Only the two address forms systemd itself hands out are handled
/// here (a path, or `@` for the abstract namespace); anything else (`vsock:`...) returns nil and the notifier
/// falls back to `sd_notify`.
final class SystemdNotifySocket: Sendable {
    private let descriptor: CInt
    private let address: sockaddr_un
    private let addressLength: socklen_t

    init?(notifySocket value: String) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        var bytes = Array(value.utf8)
        let isAbstract = bytes.first == UInt8(ascii: "@")
        guard isAbstract || bytes.first == UInt8(ascii: "/"), bytes.count < capacity, !bytes.contains(0) || isAbstract else {
            return nil
        }
        if isAbstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        // A path is sent with its terminating NUL, an abstract name without one (as sd_notify does).
        let length = pathOffset + bytes.count + (isAbstract ? 0 : 1)
        let fd = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        self.descriptor = fd
        self.address = address
        self.addressLength = socklen_t(length)
    }

    deinit { close(descriptor) }

    /// One datagram; 0 or the errno of the failed send. Blocks while the manager's queue is full, as sd_notify does.
    @discardableResult
    func send(_ text: String) -> CInt {
        var address = self.address
        let sent = text.utf8CString.withUnsafeBufferPointer { message in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(descriptor, message.baseAddress, message.count - 1, CInt(MSG_NOSIGNAL), $0, addressLength)
                }
            }
        }
        return sent < 0 ? errno : 0
    }
}
