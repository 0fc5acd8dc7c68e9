import Foundation
import NIOConcurrencyHelpers
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

/// The interval sync's own thread, on real files: it syncs on the descriptor it was given, closes a replaced
/// descriptor itself, reports a failed sync, and ends cleanly. Whether a descriptor was closed is seen from
/// the other end of a socket pair (EOF once the last copy of this end is closed), not by its number, which another test
/// running at the same time may already have reused.
@Suite("background file sync")
struct BackgroundFileSyncTests {
    /// The read end reports EOF: every write end is closed.
    static func writeEndClosed(_ readEnd: Int32) -> Bool {
        var p = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 0) == 1 else { return false }
        var byte: UInt8 = 0
        return read(readEnd, &byte, 1) == 0
    }

    static func openFile(_ path: String) -> Int32 { open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }

    /// A connected pair made close-on-exec atomically (daemons other tests start must not inherit an end).
    static func makeSocketPair() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        return (fds[0], fds[1])
    }

    @Test("a sync runs beside the caller; the next request is accepted once it is done")
    func syncsAndFinishes() throws {
        let dir = try TemporaryDirectory()
        let failures = NIOLockedValueBox<[String]>([])
        let sync = BackgroundFileSync(threadName: "test-fsync") { error in failures.withLockedValue { $0.append(error.description) } }
        #expect(!sync.isUsable, "no descriptor yet")
        #expect(!sync.request())
        let fd = Self.openFile(dir.file("out"))
        try #require(fd >= 0)
        #expect(write(fd, "line\n", 5) == 5)
        sync.use(fd)
        #expect(sync.isUsable)
        #expect(sync.request())
        // Accepted again once the first has finished: the thread is not stuck and takes the next round.
        #expect(eventually { sync.request() })
        sync.finish(wait: true)
        #expect(!sync.request() && !sync.isUsable)
        #expect(failures.withLockedValue { $0 }.isEmpty)
    }

    @Test("a replaced descriptor is closed by the sync thread, and the last one by finish")
    func replacedDescriptorIsClosed() throws {
        let sync = BackgroundFileSync(threadName: "test-fsync") { _ in }
        let first = try Self.makeSocketPair(), second = try Self.makeSocketPair()
        defer { close(first.read); close(second.read) }
        sync.use(first.write)
        #expect(sync.request())  // fdatasync on a socket is EINVAL: ignored, like on any file that cannot sync
        sync.use(second.write)
        #expect(eventually { Self.writeEndClosed(first.read) })
        #expect(!Self.writeEndClosed(second.read))
        sync.finish(wait: true)
        #expect(Self.writeEndClosed(second.read))
    }

    @Test("a failed sync is reported with its errno, and the thread carries on")
    func failureIsReported() throws {
        let failures = NIOLockedValueBox<[String]>([])
        let sync = BackgroundFileSync(threadName: "test-fsync") { error in failures.withLockedValue { $0.append(error.description) } }
        // A number no descriptor can have (the hard limit here is 20,000): fdatasync fails with EBADF.
        sync.use(1_000_000)
        #expect(sync.request())
        #expect(eventually { failures.withLockedValue { $0.count } == 1 })
        #expect(failures.withLockedValue { $0.first }?.contains("fsync") == true, "\(failures.withLockedValue { $0 })")
        #expect(eventually { sync.request() }, "after a failure the next interval's sync is accepted")
        sync.finish(wait: true)
    }
}
