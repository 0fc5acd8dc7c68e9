import Foundation
import NIOPosix
import Testing
import WSRelayCore
import WSRelaySimulator
import WSRelayTestSupport

/// Restarts that keep subscribers (issue 14 item 2), through the protocol: the test is the service manager
/// (`FDStoreManager`), the daemon is the real binary. A subscriber connected before the restart keeps its
/// connection and its filter and receives from the next process, after a `restarted` line.
@Suite("file descriptor store (real binary, test as the manager)", .mayBlock, .serialized, .timeLimit(.minutes(2)))
struct FileDescriptorStoreTests {
    static func config(_ dir: TemporaryDirectory, port: Int) -> String {
        """
        [daemon]
        state_dir = "\(dir.file("state"))"
        control_socket = "\(dir.file("control.sock"))"
        log_level = "debug"

        [[upstream]]
        name = "market"
        url = "ws://127.0.0.1:\(port)/feed?count=3"

        [[upstream]]
        name = "news"
        url = "ws://127.0.0.1:\(port)/feed?count=2"

        [[sink]]
        type = "unix"
        path = "\(dir.file("stream.sock"))"
        """
    }

    /// A subscriber as a plain blocking socket: what it sends, and every line it reads.
    final class Subscriber {
        let fd: Int32
        private var pending: [UInt8] = []
        private(set) var lines: [String] = []
        private(set) var closedByPeer = false

        init(_ path: String) throws {
            fd = try TailClient.connect(path)
            var limit = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        }

        private var open = true

        deinit { disconnect() }

        func disconnect() {
            if open { close(fd) }
            open = false
        }

        func send(_ text: String) {
            let bytes = Array((text + "\n").utf8)
            _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        /// Reads until `test` holds for the lines so far (bounded).
        func read(timeout: Duration = .seconds(20), until test: ([String]) -> Bool) -> Bool {
            let deadline = ContinuousClock.now + timeout
            var buffer = [UInt8](repeating: 0, count: 65536)
            while !test(lines) && ContinuousClock.now < deadline && !closedByPeer {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n == 0 { closedByPeer = true }
                guard n > 0 else { continue }
                pending += buffer[..<n]
                while let newline = pending.firstIndex(of: 10) {
                    lines.append(String(decoding: pending[..<newline], as: UTF8.self))
                    pending.removeSubrange(...newline)
                }
            }
            return test(lines)
        }
    }

    static func object(_ line: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
    }

    static func messages(_ lines: [String], of upstream: String) -> [Int] {
        lines.map(object).filter { $0["upstream"] as? String == upstream && $0["event"] == nil }
            .compactMap { ($0["seq"] as? NSNumber)?.intValue }
    }

    @Test("a subscriber connected before a restart keeps its connection and filter and receives from the next process")
    func subscriberSurvivesRestart() throws {
        let python = try PythonPeer.start()
        defer { python.stop() }
        let dir = try TemporaryDirectory()
        let configPath = try dir.write("wsrelay.toml", Self.config(dir, port: python.port))
        let manager = try FDStoreManager(directory: dir)
        defer { manager.stop() }
        let arguments = ["run", "--config", configPath]

        let first = try manager.start(arguments, directory: dir, name: "first")
        #expect(manager.wait { messages, _ in messages.contains { $0.contains("READY=1") } }, "\(first.stderr)")
        #expect(manager.wait { _, names in names.contains { $0.hasPrefix("wsrelay/listen/") } }, "\(manager.received)")

        let subscriber = try Subscriber(dir.file("stream.sock"))
        subscriber.send(#"{"subscribe":["market"]}"#)
        #expect(subscriber.read { lines in lines.contains { $0.hasPrefix(#"{"ok":"subscribe""#) } }, "\(subscriber.lines)")
        // Stored under a name that carries its filter.
        #expect(manager.wait { _, names in names.contains { $0.hasPrefix("wsrelay/sub/") && $0.hasSuffix("/market") } },
                "\(manager.names)")
        // Messages from now on: a reconnect of the open upstream makes the server send 3 more (seq 4...6).
        #expect(eventually { ControlSocket.upstream("market", in: dir)?.state == "open" })
        let reconnect = try ControlSocket.exchange(dir.file("control.sock"), Array(#"{"command":"reconnect","upstream":"market"}"#.utf8) + [10], replies: 1)
        #expect(reconnect.count == 1)
        #expect(subscriber.read { Self.messages($0, of: "market").contains(6) }, "\(subscriber.lines)")
        let beforeRestart = subscriber.lines.count

        // systemctl restart: SIGTERM, the manager keeps the store, the next process gets it.
        first.signal(SIGTERM)
        #expect(first.waitForExit() == 0, "\(first.stderr)")
        #expect(manager.names.contains { $0.hasPrefix("wsrelay/sub/") }, "the subscriber stays stored: \(manager.received)")
        #expect(manager.names.contains { $0.hasPrefix("wsrelay/listen/") })
        #expect(FileManager.default.fileExists(atPath: dir.file("stream.sock")), "the socket path stays for the next process: \(first.stderr)")

        #expect(FileManager.default.fileExists(atPath: dir.file("state/handover.json")), "epoch and seq for the next process")
        let readyCount = manager.received.filter { $0.contains("READY=1") }.count
        let second = try manager.start(arguments, directory: dir, name: "second")
        defer { second.signal(SIGKILL); second.waitForExit() }
        #expect(manager.wait { messages, _ in messages.filter { $0.contains("READY=1") }.count > readyCount }, "\(second.stderr)")

        // Same connection: a `restarted` line from the new process, then market messages only.
        #expect(subscriber.read { Self.messages(Array($0.dropFirst(beforeRestart)), of: "market").count >= 3 },
                "\(subscriber.lines)\n\(second.stderr)")
        let after = Array(subscriber.lines.dropFirst(beforeRestart))
        let restarted = Self.object(after.first ?? "")
        #expect(restarted["event"] as? String == "restarted", "\(after)")
        #expect((restarted["pid"] as? NSNumber)?.int32Value == second.pid)
        // epoch and seq keep growing across the handover: market had epochs 1 and 2 and seq up to 6.
        #expect(restarted["epochs"] as? [String: Int] == ["market": 3, "news": 2], "\(after)")
        #expect(Self.messages(after, of: "market") == [7, 8, 9], "\(after)")
        #expect(after.map(Self.object).filter { $0["upstream"] as? String == "market" }.allSatisfy { ($0["epoch"] as? NSNumber)?.intValue == 3 })
        // Until its subscribe request is answered a subscriber gets every upstream (seen once: news 1 and 2 arrived
        // before the reply), so the filter is judged on what came after the reply.
        let filtered = subscriber.lines.drop { !$0.hasPrefix(#"{"ok":"subscribe""#) }
        #expect(Self.messages(Array(filtered), of: "news").isEmpty, "the filter survived: \(subscriber.lines)")
        #expect(!subscriber.closedByPeer)
        #expect(second.stderr.contains("taking back 1 subscriber"), "\(second.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("state/handover.json")), "read once: a later crash must not reuse it")

        // The listening socket came back too: new subscribers connect and are stored.
        let late = try Subscriber(dir.file("stream.sock"))
        late.send(#"{"subscribe":["news"]}"#)
        #expect(late.read { lines in lines.contains { $0.hasPrefix(#"{"ok":"subscribe""#) } }, "\(late.lines)")
        #expect(manager.wait { _, names in names.filter { $0.hasPrefix("wsrelay/sub/") }.count == 2 }, "\(manager.names)")

        // A subscriber that leaves is removed from the store (FDSTOREREMOVE=1).
        let kept = manager.names.filter { $0.hasPrefix("wsrelay/sub/") && $0.hasSuffix("/market") }
        subscriber.disconnect()
        #expect(manager.wait { _, names in !names.contains { kept.contains($0) } }, "\(manager.received)")
        #expect(manager.received.contains { message in message.contains("FDSTOREREMOVE=1") && kept.contains { message.contains($0) } })

        second.signal(SIGTERM)
        #expect(second.waitForExit() == 0, "\(second.stderr)")
    }

    @Test("after a crash (SIGKILL) the next process takes the subscriber back too; epoch and seq start again")
    func subscriberSurvivesCrash() throws {
        let python = try PythonPeer.start()
        defer { python.stop() }
        let dir = try TemporaryDirectory()
        let configPath = try dir.write("wsrelay.toml", Self.config(dir, port: python.port))
        let manager = try FDStoreManager(directory: dir)
        defer { manager.stop() }
        let arguments = ["run", "--config", configPath]

        let first = try manager.start(arguments, directory: dir, name: "first")
        #expect(manager.wait { messages, _ in messages.contains { $0.contains("READY=1") } }, "\(first.stderr)")
        let subscriber = try Subscriber(dir.file("stream.sock"))
        subscriber.send(#"{"subscribe":["news"]}"#)
        #expect(subscriber.read { lines in lines.contains { $0.hasPrefix(#"{"ok":"subscribe""#) } }, "\(subscriber.lines)")
        // Stored when it subscribed, not at shutdown: a crash cannot lose it.
        #expect(manager.wait { _, names in names.contains { $0.hasPrefix("wsrelay/sub/") && $0.hasSuffix("/news") } },
                "\(manager.names)")
        let before = subscriber.lines.count

        first.signal(SIGKILL)
        #expect(first.waitForExit() == 128 + SIGKILL)
        let second = try manager.start(arguments, directory: dir, name: "second")
        defer { second.signal(SIGKILL); second.waitForExit() }
        // Lines the first process wrote just before it died can still arrive after `before` was counted (seen once
        // under load: its news 1 and 2 satisfied the wait, and the second process got SIGTERM before it had even
        // installed its handlers). The second process's stream starts at its `restarted` event.
        func sinceRestart(_ lines: [String]) -> [String] {
            Array(lines.dropFirst(before).drop { Self.object($0)["event"] as? String != "restarted" })
        }
        #expect(subscriber.read { Self.messages(sinceRestart($0), of: "news").count >= 2 },
                "\(subscriber.lines)\n\(second.stderr)")
        let after = sinceRestart(subscriber.lines)
        let restarted = Self.object(after.first ?? "")
        #expect(restarted["event"] as? String == "restarted" && restarted["epochs"] == nil, "\(after)")
        #expect(Self.messages(after, of: "news") == [1, 2], "\(after)")
        #expect(Self.messages(after, of: "market").isEmpty)
        second.signal(SIGTERM)
        #expect(second.waitForExit() == 0, "\(second.stderr)")
    }

    @Test("stopping: EXTEND_TIMEOUT_USEC only while the drain into a slow file makes progress")
    func stopIsExtendedWhileTheDrainProgresses() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let fifo = dir.file("out.fifo")
        try #require(mkfifo(fifo, 0o600) == 0)
        let readEnd = open(fifo, O_RDONLY | O_NONBLOCK)  // the daemon can open the write end; nobody reads yet
        try #require(readEnd >= 0)
        defer { close(readEnd) }
        let configPath = try dir.write("wsrelay.toml", """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"
            shutdown_timeout = "60s"

            [[upstream]]
            name = "flood"
            url = "\(server.url)/feed?count=2500&size=1000"

            [[sink]]
            type = "file"
            path = "\(fifo)"
            format = "raw"
            buffer = "1MiB"
            fsync = "never"
            """)
        let manager = try FDStoreManager(directory: dir)
        defer { manager.stop() }
        let daemon = try manager.start(["run", "--config", configPath], directory: dir, name: "daemon")
        defer { daemon.signal(SIGKILL); daemon.waitForExit() }
        #expect(eventually { (ControlSocket.status(dir)?.sinks.first?.bufferedBytes ?? 0) > 512 * 1024 })

        daemon.signal(SIGTERM)
        #expect(manager.wait { messages, _ in messages.contains { $0.contains("STOPPING=1") } })
        // Stuck (nobody reads): three samples go by without progress, so no extension.
        let stuckUntil = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < stuckUntil { usleep(100_000) }
        #expect(!manager.received.contains { $0.contains("EXTEND_TIMEOUT_USEC=") }, "\(manager.received)")

        // Read slowly (128 KiB every 200 ms): progress every second, so extensions, until the daemon has
        // written everything and closed the FIFO (end of file).
        var buffer = [UInt8](repeating: 0, count: 128 * 1024)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let n = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if n == 0 { break }
            usleep(200_000)
        }
        #expect(daemon.waitForExit() == 0, "\(daemon.stderr)")
        let extensions = manager.received.filter { $0.contains("EXTEND_TIMEOUT_USEC=3000000") }
        #expect(!extensions.isEmpty, "\(manager.received)\n\(daemon.stderr)")
    }
}
