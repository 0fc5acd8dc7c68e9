import Foundation

/// The receiving end of systemd's notify protocol: a real AF_UNIX datagram socket that the daemon under test
/// finds through NOTIFY_SOCKET, exactly as it would under systemd.
final class NotifySocket {
    let path: String
    private let fd: Int32

    init(directory: TemporaryDirectory) throws {
        path = directory.file("notify.sock")
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes.prefix(raw.count - 1))
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    }

    /// Next datagram, or nil if none arrives before the safety deadline.
    func receive(timeout: Duration = .seconds(20)) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(timeout.components.seconds * 1000)
        guard poll(&pfd, 1, ms) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// Reads datagrams until one satisfies `predicate`; returns every datagram seen, in order.
    func receive(until predicate: (String) -> Bool, timeout: Duration = .seconds(20)) -> [String] {
        var seen: [String] = []
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, let message = receive(timeout: deadline - ContinuousClock.now) {
            seen.append(message)
            if predicate(message) { break }
        }
        return seen
    }

    deinit { close(fd) }
}

extension String {
    /// The `KEY=value` assignments of a notify datagram.
    var notifyFields: [String: String] {
        var result: [String: String] = [:]
        for line in split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            result[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return result
    }
}
