import Foundation
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

/// The notify socket opened once at start, against a real datagram socket bound as systemd binds it: by
/// path and in the abstract namespace. Unknown address forms are left to libsystemd.
@Suite("systemd notify socket")
struct SystemdNotifySocketTests {
    static func receive(_ fd: Int32) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 10_000) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
    }

    @Test("a path and an abstract name both receive the exact message, once per send")
    func pathAndAbstract() throws {
        let dir = try TemporaryDirectory()
        let abstractName = "@wsrelay-test-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        for address in [dir.file("notify.sock"), abstractName] {
            let receiver = try RawUnixSocket.bind(address, datagram: true)
            defer { close(receiver) }
            let socket = try #require(SystemdNotifySocket(notifySocket: address), "\(address) not accepted")
            #expect(socket.send("READY=1\nSTATUS=one") == 0)
            #expect(socket.send("WATCHDOG=1") == 0)
            #expect(Self.receive(receiver) == "READY=1\nSTATUS=one", "\(address)")
            #expect(Self.receive(receiver) == "WATCHDOG=1", "\(address)")
        }
    }

    @Test("a send to a socket nobody has bound fails with its errno; the daemon does not stop")
    func nobodyListening() throws {
        let dir = try TemporaryDirectory()
        let socket = try #require(SystemdNotifySocket(notifySocket: dir.file("absent.sock")))
        #expect(socket.send("WATCHDOG=1") == ENOENT)
    }

    @Test("forms it does not handle are left to sd_notify: vsock, relative paths, names longer than sun_path")
    func otherForms() {
        #expect(SystemdNotifySocket(notifySocket: "vsock:2:1234") == nil)
        #expect(SystemdNotifySocket(notifySocket: "relative/notify.sock") == nil)
        #expect(SystemdNotifySocket(notifySocket: "/" + String(repeating: "x", count: 200)) == nil)
    }
}
