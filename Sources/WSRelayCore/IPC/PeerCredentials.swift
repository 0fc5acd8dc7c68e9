import Glibc
import NIOCore

/// Who is on the other end of a Unix socket connection (`SO_PEERCRED`: the credentials at `connect` time).
struct PeerCredentials: Sendable, Equatable, CustomStringConvertible {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32

    static let unknown = PeerCredentials(pid: 0, uid: .max, gid: .max)

    var description: String { "pid \(pid), uid \(uid), gid \(gid)" }

    /// Empty lists allow anyone who can open the socket file; otherwise the uid or the primary gid must be listed.
    func isAllowed(uids: [UInt32], gids: [UInt32]) -> Bool {
        if uids.isEmpty && gids.isEmpty { return true }
        return uids.contains(uid) || gids.contains(gid)
    }

    /// Reads `SO_PEERCRED` through NIO's socket option API (on the channel's event loop).
    static func of(_ channel: any Channel) -> EventLoopFuture<PeerCredentials> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(.unknown)
        }
        let future: EventLoopFuture<UCred> = provider.unsafeGetSocketOption(
            level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET), name: NIOBSDSocket.Option(rawValue: soPeerCred))
        return future.map { PeerCredentials(pid: $0.pid, uid: $0.uid, gid: $0.gid) }
    }

    /// `struct ucred` from <sys/socket.h> (only declared with _GNU_SOURCE, so not visible through Glibc):
    /// three 32-bit fields, no padding.
    struct UCred: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// SO_PEERCRED (17 on every Linux architecture but a few MIPS/PowerPC/SPARC ones, which glibc's value covers).
    static let soPeerCred: Int32 = SO_PEERCRED
}
