import Foundation
import WSRelayCore
import WSRelayTestSupport

/// Talks to a running daemon's control socket the way `wsrelay status` does, for tests that poll state.
enum ControlSocket {
    static func status(_ dir: TemporaryDirectory) -> StatusReport? {
        (try? ControlClient.send(.status, socketPath: dir.file("control.sock"), timeout: .seconds(10)))?.status
    }

    static func upstream(_ name: String, in dir: TemporaryDirectory) -> StatusReport.Upstream? {
        status(dir)?.upstreams.first { $0.name == name }
    }

    /// Sends raw bytes on one connection and returns the reply lines received until `replies` lines arrived
    /// or the daemon closed the connection (bounded by a 10 s receive timeout).
    static func exchange(_ path: String, _ bytes: [UInt8], replies: Int) throws -> [String] {
        let fd = try TailClient.connect(path)
        defer { close(fd) }
        var limit = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            offset += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while received.filter({ $0 == 10 }).count < replies {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            received += buffer[..<n]
        }
        return String(decoding: received, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}
