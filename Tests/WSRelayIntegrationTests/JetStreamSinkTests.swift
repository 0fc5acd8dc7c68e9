import Foundation
import NIOPosix
import Testing
import WSRelayCore
import WSRelaySimulator
import WSRelayTestSupport

/// The JetStream sink through the real binary, real `nats-server` processes (single node and a 3-node R3
/// cluster) and an independent consumer (Python nats-py) that reads the stream back.
@Suite("jetstream sink", .mayBlock, .serialized, .timeLimit(.minutes(3)))
struct JetStreamSinkTests {
    static func daemonHeader(_ dir: TemporaryDirectory) -> String {
        """
        [daemon]
        state_dir = "\(dir.path)"
        control_socket = "\(dir.file("control.sock"))"
        shutdown_timeout = "20s"
        """
    }

    static func jetStreamStatus(_ dir: TemporaryDirectory, sink index: Int = 0) -> StatusReport.Sink? {
        guard let sinks = ControlSocket.status(dir)?.sinks, sinks.indices.contains(index) else { return nil }
        return sinks[index]
    }

    static func acknowledged(_ dir: TemporaryDirectory, sink index: Int = 0) -> UInt64 {
        jetStreamStatus(dir, sink: index)?.jetstream?.acknowledged ?? 0
    }

    /// The client connection ids nats-server has now (monitoring endpoint `/connz`).
    static func clientIDs(_ nats: NATSServer) -> [Int] {
        guard let body = try? MetricsScrape.get(port: nats.monitorPort, path: "/connz").body,
              let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
              let connections = object["connections"] as? [[String: Any]] else { return [] }
        return connections.compactMap { ($0["cid"] as? NSNumber)?.intValue }.sorted()
    }

    /// `numbers` is exactly 1...count in order; otherwise says where it first differs.
    static func firstDifference(_ numbers: [Int], count: Int) -> String? {
        if numbers.count != count { return "read \(numbers.count) messages, expected \(count)" }
        for (i, n) in numbers.enumerated() where n != i + 1 {
            let around = numbers[max(0, i - 3)..<min(numbers.count, i + 30)].map(String.init).joined(separator: " ")
            let later = numbers.firstIndex(of: i + 1).map { "at position \($0)" } ?? "missing"
            return "position \(i): message \(n), expected \(i + 1) (\(later)); around: \(around)"
        }
        return nil
    }

    @Test("100,000 messages reach the stream exactly once, in seq order")
    func hundredThousand() async throws {
        let dir = try TemporaryDirectory("wsrelay-js")
        let nats = try NATSServer(in: dir)
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let count = 100_000
        let daemon = try RunningDaemon(config: """
            \(Self.daemonHeader(dir))

            [[upstream]]
            name = "feed"
            url = "\(server.url)/feed?count=\(count)&size=100"

            [[sink]]
            type = "jetstream"
            servers = ["\(nats.url)"]
            subject = "wsrelay.{upstream}"
            stream = { name = "WSRELAY", replicas = 1, duplicate_window = "2m" }
            """, in: dir)
        let done = eventually(timeout: .seconds(90)) { Self.acknowledged(dir) == UInt64(count) }
        let status = Self.jetStreamStatus(dir)
        #expect(done, "\(String(describing: status))\n\(daemon.log)")
        #expect(status?.jetstream?.connectedServer == nats.url)
        #expect(status?.jetstream?.inFlight == 0)
        #expect(status?.dropped == 0)

        // Reload with another sink added: the unchanged JetStream sink stays the same sink on the same
        // connection (its counters go on; nats-server still sees the one client connection it had).
        let before = Self.clientIDs(nats)
        #expect(before.count == 1)
        try (try String(contentsOfFile: daemon.configPath, encoding: .utf8) + """

            [[sink]]
            type = "file"
            path = "\(dir.file("added.jsonl"))"
            """).write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let reload = try daemon.command(["reload"])
        #expect(reload.status == 0, "\(reload.stdout)\(reload.stderr)")
        #expect(eventually { ControlSocket.status(dir)?.sinks.count == 2 })
        #expect(Self.acknowledged(dir) == UInt64(count), "the same sink, not a new one counting from zero")
        #expect(Self.clientIDs(nats) == before, "the same NATS connection")
        #expect(daemon.stop() == 0)

        let (stored, data) = try NATSServer.readStream(url: nats.url, stream: "WSRELAY", in: dir)
        let contents = StreamContents(data)
        #expect(stored == count)
        #expect(Self.firstDifference(contents.messages.compactMap(\.seq), count: count) == nil)
        #expect(Self.firstDifference(contents.numbers, count: count) == nil)
        #expect(contents.messages.allSatisfy { $0.upstream == "feed" })
    }

    @Test("cluster down at start and for 10 s mid-flood: block loses nothing, drop publishes a gap with the right count")
    func outage() async throws {
        let dir = try TemporaryDirectory("wsrelay-js")
        let nats = try NATSServer(in: dir, start: false)
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let count = 30_000
        let daemon = try RunningDaemon(config: """
            \(Self.daemonHeader(dir))

            [[upstream]]
            name = "a"
            url = "\(server.url)/feed?count=\(count)&size=100&rate=5000&same=1"
            # A paused upstream does not read its pongs either: keepalive would end the connection (and the
            # simulator would start a new flood) during the outage.
            ping_interval = "10m"

            [[upstream]]
            name = "b"
            url = "\(server.url)/feed?count=\(count)&size=100&rate=5000&same=1"
            ping_interval = "10m"

            [[sink]]
            type = "jetstream"
            upstreams = ["a"]
            servers = ["\(nats.url)"]
            subject = "blocked.{upstream}"
            stream = { name = "BLOCKED" }
            buffer = "256KiB"
            on_full = "block"

            [[sink]]
            type = "jetstream"
            upstreams = ["b"]
            servers = ["\(nats.url)"]
            subject = "dropped.{upstream}"
            stream = { name = "DROPPED" }
            buffer = "64KiB"
            on_full = "drop"
            """, in: dir)

        // Down at start: both sinks say they cannot connect, naming the server; the daemon runs.
        #expect(eventually { (0...1).allSatisfy { Self.jetStreamStatus(dir, sink: $0)?.lastError?.contains(nats.url) == true } },
                "\(String(describing: ControlSocket.status(dir)?.sinks))")
        #expect(eventually { Self.jetStreamStatus(dir)?.pausingUpstreams == true }, "the full block sink pauses its upstream")
        try nats.start()
        #expect(eventually(timeout: .seconds(30)) { Self.acknowledged(dir, sink: 0) >= 8_000 })

        // Mid-flood: the server dies for 10 s and comes back on the same port and store.
        nats.kill()
        let before = Self.acknowledged(dir, sink: 0)
        try await Task.sleep(for: .seconds(10))
        #expect(Self.acknowledged(dir, sink: 0) == before, "nothing is acknowledged while the server is down")
        #expect(Self.jetStreamStatus(dir)?.jetstream?.connectedServer == nil)
        try nats.start()

        let done = eventually(timeout: .seconds(60)) {
            Self.acknowledged(dir, sink: 0) == UInt64(count)
                && ControlSocket.upstream("b", in: dir)?.messages == UInt64(count)
                && Self.jetStreamStatus(dir, sink: 1)?.jetstream.map { $0.inFlight == 0 && $0.pending == 0 } == true
        }
        let sinks = ControlSocket.status(dir)?.sinks
        #expect(done, "\(String(describing: sinks))\n\(daemon.log)")
        #expect(daemon.log.contains("disconnected from \(nats.url)"), "the outage is logged naming the server")
        #expect(daemon.stop() == 0)

        // block: everything, once, in order.
        let blocked = StreamContents(try NATSServer.readStream(url: nats.url, stream: "BLOCKED", in: dir).data)
        #expect(Self.firstDifference(blocked.numbers, count: count) == nil)
        #expect(Self.firstDifference(blocked.messages.compactMap(\.seq), count: count) == nil)

        // drop: what is missing is exactly what the gap records count, and the status agrees.
        let dropped = StreamContents(try NATSServer.readStream(url: nats.url, stream: "DROPPED", in: dir).data)
        let seqs = dropped.messages.compactMap(\.seq)
        #expect(!dropped.gaps.isEmpty, "a gap record was published")
        #expect(dropped.droppedInGaps > 0)
        #expect(seqs.count + dropped.droppedInGaps == count, "\(seqs.count) stored + \(dropped.droppedInGaps) dropped")
        #expect(Set(seqs).count == seqs.count && seqs == seqs.sorted(), "no duplicates, in order")
        #expect(UInt64(dropped.droppedInGaps) == sinks?[1].dropped)
        var missing = Set(1...count)
        missing.subtract(seqs)
        var covered = Set<Int>()
        for gap in dropped.gaps {
            let first = (gap.object["first_seq"] as? NSNumber)?.intValue ?? 0
            let last = (gap.object["last_seq"] as? NSNumber)?.intValue ?? 0
            if first >= 1 && last >= first { covered.formUnion(first...last) }
        }
        let differing = missing.symmetricDifference(covered).count
        #expect(differing == 0, "the gap records name exactly the missing seqs: \(missing.count) missing, \(covered.count) covered")
    }

    @Test("two relays on the same upstream with dedupe = payload; one killed mid-flood: no gap, no duplicate")
    func relayPair() async throws {
        let dir = try TemporaryDirectory("wsrelay-js")
        let nats = try NATSServer(in: dir)
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let count = 20_000
        let dirA = try TemporaryDirectory("wsrelay-js-a")
        let dirB = try TemporaryDirectory("wsrelay-js-b")
        func config(_ relayDir: TemporaryDirectory) -> String {
            """
            \(Self.daemonHeader(relayDir))

            [[upstream]]
            name = "feed"
            url = "\(server.url)/feed?count=\(count)&size=100&rate=4000&same=1"

            [[sink]]
            type = "jetstream"
            servers = ["\(nats.url)"]
            subject = "pair.{upstream}"
            dedupe = "payload"
            stream = { name = "PAIR", duplicate_window = "2m" }
            """
        }
        let relayA = try RunningDaemon(config: config(dirA), in: dirA)
        let relayB = try RunningDaemon(config: config(dirB), in: dirB)
        #expect(eventually(timeout: .seconds(30)) { Self.acknowledged(dirB) >= 4_000 })
        relayB.process.signal(SIGKILL)
        relayB.process.waitForExit()

        let done = eventually(timeout: .seconds(60)) { Self.acknowledged(dirA) == UInt64(count) }
        let status = Self.jetStreamStatus(dirA)
        #expect(done, "\(String(describing: status))\n\(relayA.log)")
        #expect(relayA.stop() == 0)

        // Both relays published (B had at least 4,000 acknowledged before it died, A everything): the stream
        // holding exactly `count` messages is the de-duplication at work.
        let (stored, data) = try NATSServer.readStream(url: nats.url, stream: "PAIR", in: dir)
        let contents = StreamContents(data)
        #expect(stored == count)
        #expect(Self.firstDifference(contents.numbers, count: count) == nil)
    }

    @Test("bad input: each failing sink names its server or key; the other sinks keep running")
    func badInput() async throws {
        let dir = try TemporaryDirectory("wsrelay-js")
        let nats = try NATSServer(in: dir)
        let guarded = try NATSServer(name: "guarded", in: dir, extraArguments: ["--auth", "right-token-1234"])
        let closer = try ClosingListener()
        let unreachable = MetricsScrape.freePort()
        let created = try WSRelayProcess.runExternal(
            PythonPeer.python, ["\(PythonPeer.root)/Tests/Peers/js_read.py", "create", nats.url, "EXISTING", "existing.*"],
            directory: dir, name: "js-create")
        try #require(created.status == 0, "\(created.stderr)")
        try dir.write("wrong-token", "wrong-token-5678\n", mode: 0o600)
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let count = 2_000
        let daemon = try RunningDaemon(config: """
            \(Self.daemonHeader(dir))

            [[upstream]]
            name = "feed"
            url = "\(server.url)/feed?count=\(count)&size=100"

            [[sink]]
            type = "jetstream"
            servers = ["nats://127.0.0.1:\(unreachable)"]
            subject = "x.{upstream}"
            on_full = "drop"

            [[sink]]
            type = "jetstream"
            servers = ["\(guarded.url)"]
            subject = "x.{upstream}"
            token_file = "\(dir.file("wrong-token"))"
            on_full = "drop"

            [[sink]]
            type = "jetstream"
            servers = ["\(nats.url)"]
            subject = "existing.{upstream}"
            stream = { name = "EXISTING", max_age = "2h" }
            on_full = "drop"

            [[sink]]
            type = "jetstream"
            servers = ["nats://127.0.0.1:\(closer.port)"]
            subject = "x.{upstream}"
            on_full = "drop"

            [[sink]]
            type = "file"
            path = "\(dir.file("out.jsonl"))"
            """, in: dir)
        defer { daemon.stop() }

        #expect(eventually(timeout: .seconds(30)) { EnvelopeLine.parse(file: dir.file("out.jsonl")).count == count },
                "the file sink got everything while the JetStream sinks failed")
        let expected = [
            (0, "cannot connect to nats://127.0.0.1:\(unreachable)"),
            (1, "cannot connect to \(guarded.url)"),
            (2, "stream.max_age: the stream has 1h, the configuration says 2h"),
            (3, "cannot connect to nats://127.0.0.1:\(closer.port)"),
        ]
        for (index, text) in expected {
            #expect(eventually { Self.jetStreamStatus(dir, sink: index)?.lastError?.contains(text) == true },
                    "sink \(index): \(String(describing: Self.jetStreamStatus(dir, sink: index)?.lastError))")
            #expect(daemon.log.contains(text), "logged: \(text)")
            #expect(Self.jetStreamStatus(dir, sink: index)?.failing == true)
        }
        #expect(Self.jetStreamStatus(dir, sink: 1)?.lastError?.lowercased().contains("authorization") == true)
        #expect(!daemon.log.contains("wrong-token-5678") && !daemon.log.contains("right-token-1234"), "no secret in the log")
        #expect(processIsAlive(daemon.process.pid))
        let table = try WSRelayProcess.run(["status", "--socket", dir.file("control.sock")], directory: dir)
        #expect(table.stdout.contains("JETSTREAM") && table.stdout.contains("DISCONNECTED"), "\(table.stdout)")
    }

    @Test("3-node cluster, R3 stream: the stream leader SIGKILLed mid-flood, every message once, none far from its turn")
    func clusterLeaderKilled() async throws {
        let dir = try TemporaryDirectory("wsrelay-js")
        let clusterPorts = (0..<3).map { _ in MetricsScrape.freePort() }
        var nodes: [NATSServer] = []
        for i in 0..<3 {
            nodes.append(try NATSServer(
                name: "n\(i + 1)", in: dir, clusterPort: clusterPorts[i],
                routes: clusterPorts.enumerated().filter { $0.offset != i }.map(\.element), start: false))
        }
        for node in nodes { try node.start(waitForHealth: false) }
        for node in nodes {
            #expect(eventually { (try? MetricsScrape.get(port: node.monitorPort, path: "/varz").status) == 200 })
        }
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let count = 20_000
        let daemon = try RunningDaemon(config: """
            \(Self.daemonHeader(dir))

            [[upstream]]
            name = "feed"
            url = "\(server.url)/feed?count=\(count)&size=100&rate=4000"

            [[sink]]
            type = "jetstream"
            servers = [\(nodes.map { "\"\($0.url)\"" }.joined(separator: ", "))]
            subject = "cluster.{upstream}"
            stream = { name = "CLUSTER", replicas = 3 }
            ack_timeout = "2s"
            """, in: dir)
        #expect(eventually(timeout: .seconds(60)) { Self.acknowledged(dir) >= 4_000 }, "\(daemon.log)")
        let leader = NATSServer.streamLeader(url: nodes[0].url, stream: "CLUSTER", in: dir)
        let victim = try #require(nodes.first { $0.name == leader }, "leader \(String(describing: leader))")
        victim.kill(SIGKILL)

        let done = eventually(timeout: .seconds(90)) { Self.acknowledged(dir) == UInt64(count) }
        let status = Self.jetStreamStatus(dir)
        #expect(done, "\(String(describing: status))\n\(daemon.log)")
        #expect(daemon.stop() == 0)
        let survivor = try #require(nodes.first { $0.name != leader })
        let (stored, data) = try NATSServer.readStream(url: survivor.url, stream: "CLUSTER", in: dir)
        let contents = StreamContents(data)
        #expect(stored == count)
        // Every message once; the only reordering allowed is that of messages in flight to the dead leader,
        // stored again after their ack timed out: at most max_in_flight (1024) places from their turn.
        #expect(contents.numbers.sorted() == Array(1...count), "\(Self.firstDifference(contents.numbers.sorted(), count: count) ?? "")")
        let displaced = contents.numbers.enumerated().map { abs($0.element - ($0.offset + 1)) }.max() ?? 0
        #expect(displaced <= 1024, "\(Self.firstDifference(contents.numbers, count: count) ?? "")")
    }
}

/// A TCP listener on 127.0.0.1 that accepts every connection and closes it at once (a server that hangs up).
final class ClosingListener {
    private let socket: ListeningTCPSocket
    var port: Int { socket.port }

    init() throws {
        socket = try ListeningTCPSocket()
        let listener = socket.fd
        Thread {
            // Bounded: at most 10,000 connections; it ends when the socket is shut down.
            for _ in 0..<10_000 {
                let client = accept(listener, nil, nil)
                if client < 0 { return }
                close(client)
            }
        }.start()
    }

    deinit { shutdown(socket.fd, Int32(SHUT_RDWR)) }
}
