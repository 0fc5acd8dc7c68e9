import Glibc

/// The client side of the control socket, for `wsrelay status`, `pause`, `resume`, `reconnect`, `reload`
/// and `refresh-credential`: one request line out, one reply line back, blocking (a CLI has nothing else
/// to do meanwhile). Failures are one line naming the socket and what to check, with exit status 69.
public enum ControlClient {
    /// Sends `request` to the daemon at `socketPath` and returns its reply. `timeout` bounds the wait for
    /// the reply (a reload or a token refresh can take a while).
    public static func send(_ request: ControlRequest, socketPath: String, timeout: Duration = .seconds(60))
        throws(TailClient.Failure) -> ControlReply {
        let fd = try TailClient.connect(
            socketPath, purpose: "is wsrelay running? (the path is [daemon] control_socket; see --config / --socket)")
        defer { close(fd) }
        var limit = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        // A refused peer is told why and disconnected before it writes; its reply is still read below.
        let (written, writeError) = sendAll(fd, Array((request.line + "\n").utf8))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw unavailable("\(socketPath): no reply within \(UpstreamState.describe(timeout))")
                }
                throw unavailable("\(socketPath): read: \(SystemError.describe(errno))")
            }
            if n == 0 { break }
            received.append(contentsOf: buffer[..<n])
            if let newline = received.firstIndex(of: UInt8(ascii: "\n")) {
                received.removeSubrange(newline...)
                break
            }
        }
        guard !received.isEmpty else {
            let cause = written ? "" : ": \(SystemError.describe(writeError))"
            throw unavailable("\(socketPath): the daemon closed the connection without a reply\(cause)")
        }
        do {
            return try ControlReply.decode(received)
        } catch {
            throw unavailable("\(socketPath): the reply is not a wsrelay control reply: \(error)")
        }
    }

    /// `send` without SIGPIPE: a daemon that hung up must not kill the CLI.
    private static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> (Bool, Int32) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return (false, errno) }
        }
        return (true, 0)
    }

    private static func unavailable(_ text: String) -> TailClient.Failure {
        TailClient.Failure(description: text, exitCode: DaemonExitCode.unavailable.rawValue)
    }
}
