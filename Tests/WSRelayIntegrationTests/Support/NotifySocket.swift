import Foundation
import WSRelayTestSupport

/// The receiving end of systemd's notify protocol: a real AF_UNIX datagram socket that the daemon under test
/// finds through NOTIFY_SOCKET, exactly as it would under systemd. Like systemd, it reads continuously (a
/// reader thread queues every datagram), so the daemon's sends never back up.
final class NotifySocket {
    let path: String
    private let inbox: Inbox

    /// Shared by the socket object and its reader thread; the thread owns and finally closes the descriptor.
    // @unchecked Sendable: `condition` (NSCondition) guards messages and closed.
    private final class Inbox: @unchecked Sendable {
        let condition = NSCondition()
        var messages: [String] = []
        var closed = false
    }

    init(directory: TemporaryDirectory) throws {
        let socketPath = directory.file("notify.sock")
        path = socketPath
        let fd = try RawUnixSocket.bind(socketPath, datagram: true)
        let inbox = Inbox()
        self.inbox = inbox
        Thread { Self.readLoop(fd: fd, inbox: inbox) }.start()
    }

    private static func readLoop(fd: Int32, inbox: Inbox) {
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 200)
            inbox.condition.lock()
            let stop = inbox.closed
            inbox.condition.unlock()
            if stop { return }
            guard ready == 1 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { continue }
            let message = String(decoding: buffer[0..<n], as: UTF8.self)
            inbox.condition.lock()
            inbox.messages.append(message)
            inbox.condition.signal()
            inbox.condition.unlock()
        }
    }

    /// Next datagram, or nil if none arrives before the safety deadline.
    func receive(timeout: Duration = .seconds(20)) -> String? {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let deadline = Date().addingTimeInterval(seconds)
        inbox.condition.lock()
        defer { inbox.condition.unlock() }
        while inbox.messages.isEmpty {
            if !inbox.condition.wait(until: deadline) { return nil }
        }
        return inbox.messages.removeFirst()
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

    /// Drops every datagram received so far (so what is read next was sent after this call); how many.
    @discardableResult
    func discardReceived() -> Int {
        inbox.condition.lock()
        defer { inbox.condition.unlock() }
        let count = inbox.messages.count
        inbox.messages.removeAll()
        return count
    }

    deinit {
        inbox.condition.lock()
        inbox.closed = true
        inbox.condition.unlock()
    }
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
