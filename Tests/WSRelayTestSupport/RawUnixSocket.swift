import Foundation

/// Plain blocking AF_UNIX sockets for tests that play the other side of the daemon's sockets (a client of
/// its metrics or sink socket, systemd's notify socket, a stale socket file) without an event loop.
/// Every descriptor is close-on-exec: other tests spawn the real binary concurrently, and a child that
/// inherited one kept a "stale" socket alive.
public enum RawUnixSocket {
    /// Names the path and the errno of a failed call.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// A stream (or datagram) socket connected to `path`.
    public static func connect(_ path: String, datagram: Bool = false) throws -> Int32 {
        try open(path, datagram: datagram, call: "connect") { fd, address, length in Glibc.connect(fd, address, length) }
    }

    /// A stream (or datagram) socket bound to `path`; the caller listens on a stream socket if it wants to.
    public static func bind(_ path: String, datagram: Bool = false) throws -> Int32 {
        try open(path, datagram: datagram, call: "bind") { fd, address, length in Glibc.bind(fd, address, length) }
    }

    private static func open(
        _ path: String, datagram: Bool, call: String,
        _ body: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32
    ) throws -> Int32 {
        let type = datagram ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        let fd = socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw Failure(description: "\(call) \(path): path longer than sun_path")
        }
        // "@name" is a name in the abstract namespace (a leading NUL, no terminating one), as systemd writes it.
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: abstract ? bytes : bytes + [0]) }
        let length = abstract ? MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count : MemoryLayout<sockaddr_un>.size
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body(fd, $0, socklen_t(length)) }
        }
        guard rc == 0 else {
            let code = errno
            close(fd)
            throw Failure(description: "\(call) \(path): errno \(code)")
        }
        return fd
    }
}
