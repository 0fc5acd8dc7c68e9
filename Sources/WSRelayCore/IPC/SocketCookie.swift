import Glibc
import NIOCore

/// Finds the descriptor number behind a NIO channel, which NIO does not expose: every Linux socket has a
/// unique 64-bit cookie (`SO_COOKIE`, kernel >= 4.12), readable through NIO's socket option API from the
/// channel and with `getsockopt` from each descriptor in `/proc/self/fd`.
///
/// Used only with the systemd file descriptor store, which needs the descriptor of each listening socket
/// and subscriber. The scan costs one `getsockopt` per open descriptor (microseconds for thousands).
enum SocketCookie {
    static let option: Int32 = 57  // SO_COOKIE in <asm-generic/socket.h>

    /// The cookie of the channel's socket (on its event loop).
    static func of(_ channel: any Channel) -> EventLoopFuture<UInt64> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        return provider.unsafeGetSocketOption(
            level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET), name: NIOBSDSocket.Option(rawValue: option))
    }

    static func of(fd: Int32) -> UInt64? {
        var cookie: UInt64 = 0
        var length = socklen_t(MemoryLayout<UInt64>.size)
        guard getsockopt(fd, SOL_SOCKET, option, &cookie, &length) == 0 else { return nil }
        return cookie
    }

    /// The descriptor of this process whose socket has `cookie`, or nil.
    static func descriptor(of cookie: UInt64) -> Int32? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let fd = Int32(name), fd > 2 else { continue }
            if of(fd: fd) == cookie { return fd }
        }
        return nil
    }
}
