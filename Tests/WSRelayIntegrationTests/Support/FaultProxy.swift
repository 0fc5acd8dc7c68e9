import Foundation

/// A userspace TCP proxy on 127.0.0.1 for faults the kernel here cannot make (no `netem`): it can pause a
/// connection (bytes stop both ways, nothing is closed), trickle the server's bytes one at a time, or cut
/// every connection (RST). One thread accepts, one thread per connection relays with `poll`; every loop
/// wakes at least every 20 ms to see the mode and the stop flag.
final class FaultProxy: @unchecked Sendable {  // the fields below `lock` are guarded by it
    enum Mode: Sendable { case pass, pause, trickle }

    let port: Int
    private let targetPort: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var mode = Mode.pass
    private var open: Set<Int32> = []
    private var relays = 0
    private var accepted = 0
    private var stopped = false
    private var acceptLoopRunning = true
    private var listenerClosed = false

    init(to targetPort: Int) throws {
        self.targetPort = UInt16(targetPort)
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    var url: String { "ws://127.0.0.1:\(port)" }
    var connectionsAccepted: Int { lock.withLock { accepted } }

    func set(_ mode: Mode) { lock.withLock { self.mode = mode } }

    /// Resets every open connection (SO_LINGER 0, then close): the peers get RST, as from a crashed middlebox.
    /// A paused relay is woken too: it leaves its pause once the mode changes or the proxy stops.
    func cutAll() {
        lock.withLock {
            for fd in open {
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                shutdown(fd, Int32(SHUT_RD))  // wakes the relay, which closes: RST, no FIN
            }
        }
    }

    /// Stops accepting, cuts what is open, and waits (bounded) for the threads to end. Idempotent (tests
    /// call it and `deinit` calls it again): a second `close` of the listener's number would close whatever
    /// socket reused it — under TSan that was a NIO channel, and NIO's precondition on EBADF killed the
    /// whole test process.
    func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        cutAll()
        for _ in 0..<500 where lock.withLock({ relays > 0 || acceptLoopRunning }) { usleep(10_000) }
        // Closed only once the accept thread is out of `accept` (or after the bounded wait: then it is stuck
        // and the number stays ours rather than being reused under it).
        let close = lock.withLock { () -> Bool in
            guard !acceptLoopRunning, !listenerClosed else { return false }
            listenerClosed = true
            return true
        }
        if close { Glibc.close(listener) }
    }

    deinit { stop() }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop() {
        defer { lock.withLock { acceptLoopRunning = false } }
        while !lock.withLock({ stopped }) {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = Self.loopback(port: targetPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if connected != 0 {
                close(server)
                close(client)
                continue
            }
            lock.withLock {
                open.insert(client)
                open.insert(server)
                relays += 1
                accepted += 1
            }
            Thread.detachNewThread { [self] in relay(client: client, server: server) }
        }
    }

    private func relay(client: Int32, server: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: server, events: Int16(POLLIN), revents: 0)]
        loop: while true {
            let mode = lock.withLock { stopped ? nil : self.mode }
            guard let mode else { break }
            if mode == .pause {
                usleep(20_000)
                continue
            }
            fds[0].revents = 0
            fds[1].revents = 0
            if poll(&fds, 2, 20) < 0 && errno != EINTR { break }
            for (index, from, to) in [(0, client, server), (1, server, client)] where fds[index].revents != 0 {
                let chunk = (mode == .trickle && from == server) ? 1 : buffer.count
                let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, chunk) }
                if n <= 0 { break loop }
                var offset = 0
                while offset < n {
                    let w = buffer[offset..<n].withUnsafeBytes { write(to, $0.baseAddress, $0.count) }
                    if w <= 0 { break loop }
                    offset += w
                }
                if chunk == 1 { usleep(200) }
            }
        }
        lock.withLock {
            open.remove(client)
            open.remove(server)
            relays -= 1
        }
        close(client)
        close(server)
    }
}
