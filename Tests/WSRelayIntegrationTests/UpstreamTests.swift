import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// Part 2 through the real binary: a real NIO WebSocket server (the simulator, in this process) and an
/// independent one (Python `websockets`), files written by the daemon, close codes seen by the server.
@Suite("upstream connections", .mayBlock, .serialized, .timeLimit(.minutes(1)))
struct UpstreamTests {
    static func config(_ dir: TemporaryDirectory, upstreams: String, sinkExtra: String = "") -> String {
        """
        [daemon]
        state_dir = "\(dir.path)"
        control_socket = "\(dir.file("control.sock"))"
        log_level = "debug"

        \(upstreams)

        [[sink]]
        type = "file"
        path = "\(dir.file("out.jsonl"))"
        fsync = "never"
        events = true
        \(sinkExtra)
        """
    }

    static func upstream(_ name: String, _ url: String, _ extra: String = "") -> String {
        """
        [[upstream]]
        name = "\(name)"
        url = "\(url)"
        \(extra)
        [upstream.reconnect]
        initial = "200ms"
        max = "2s"

        """
    }

    static func messages(_ dir: TemporaryDirectory) -> [EnvelopeLine] {
        EnvelopeLine.parse(file: dir.file("out.jsonl")).filter { $0.type != nil }
    }

    @Test("text, binary and fragmented messages from the NIO simulator arrive whole, in order, with seq")
    func textBinaryFragmented() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, upstreams:
            Self.upstream("text", "\(server.url)/t?count=30&size=200&fragments=4") +
            Self.upstream("bin", "\(server.url)/b?count=20&size=64&binary=1&fragments=3")), in: dir)
        #expect(eventually { Self.messages(dir).count == 50 }, "got \(Self.messages(dir).count)")
        #expect(daemon.stop() == 0)
        let lines = Self.messages(dir)
        for name in ["text", "bin"] {
            let mine = lines.filter { $0.upstream == name }
            #expect(mine.map(\.seq) == countingUp(to: mine.count).map { Optional($0) })
            #expect(mine.allSatisfy { $0.type == (name == "bin" ? "binary" : "text") })
            let numbers = mine.compactMap(\.simulatorNumber)
            #expect(numbers.count == mine.count && numbers == numbers.sorted())
        }
        #expect(lines.filter { $0.upstream == "text" }.allSatisfy { ($0.data?.utf8.count ?? 0) == 200 })
    }

    @Test("an independent peer (Python websockets): unicode text, binary, fragments and its close code")
    func independentPeer() throws {
        let python = try PythonPeer.start()
        defer { python.stop() }
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, upstreams:
            Self.upstream("py", "ws://127.0.0.1:\(python.port)/feed?count=10&fragments=3&close=4000") +
            Self.upstream("pybin", "ws://127.0.0.1:\(python.port)/bin?count=5&binary=1")), in: dir)
        #expect(eventually { Self.messages(dir).filter { $0.upstream == "py" }.count >= 10 })
        #expect(eventually { Self.messages(dir).filter { $0.upstream == "pybin" }.count >= 5 })
        #expect(daemon.stop() == 0)
        let py = Self.messages(dir).filter { $0.upstream == "py" }
        #expect(py.first?.data?.contains("h\u{e9}llo \u{2603}") == true, "\(py.first?.data ?? "")")
        #expect(py.prefix(10).compactMap(\.simulatorNumber) == Array(1...10))
        let events = EnvelopeLine.parse(file: dir.file("out.jsonl")).filter { $0.event == "disconnected" && $0.upstream == "py" }
        #expect(events.contains { ($0.object["code"] as? NSNumber)?.intValue == 4000 }, "disconnect events: \(events.map(\.object))")
        #expect(python.events.contains { $0["event"] as? String == "closed" && ($0["code"] as? NSNumber)?.intValue == 4000 })
    }

    @Test("1009 for an oversized message and 1007 for invalid UTF-8; the daemon reconnects")
    func badInputCloseCodes() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, upstreams:
            Self.upstream("big", "\(server.url)/big?count=1&oversize=5000", "max_message_size = \"4KiB\"") +
            Self.upstream("utf", "\(server.url)/utf?count=1&invalid_utf8=1")), in: dir)
        func codes(_ path: String) -> [UInt16] {
            server.recorder.connections.filter { $0.path.hasPrefix(path) }.compactMap(\.closeCodeReceived)
        }
        #expect(eventually { codes("/big").count >= 2 }, "\(server.recorder.connections)")
        #expect(eventually { codes("/utf").count >= 2 })
        #expect(codes("/big").allSatisfy { $0 == 1009 })
        #expect(codes("/utf").allSatisfy { $0 == 1007 })
        #expect(daemon.stop() == 0)
        // The good message before each bad one was still delivered, once per connection.
        #expect(Self.messages(dir).filter { $0.upstream == "big" }.count >= 2)
    }

    @Test("pings go out at ping_interval with identifying payloads; a peer that stops answering is dropped within interval + timeout and reconnected")
    func keepalive() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let started = ContinuousClock.now
        let daemon = try RunningDaemon(config: Self.config(dir, upstreams:
            Self.upstream("live", "\(server.url)/live", "ping_interval = \"500ms\"\npong_timeout = \"2s\"") +
            Self.upstream("dead", "\(server.url)/dead?ignore_pings=1", "ping_interval = \"500ms\"\npong_timeout = \"500ms\"")),
            in: dir)
        let live = { server.recorder.connections.first { $0.path == "/live" } }
        #expect(eventually { (live()?.pings.count ?? 0) >= 4 })
        // Not more pings than the interval allows since the daemon started. (Counted, not spaced: arrival
        // times on a loaded machine bunch pings the daemon sent on time, and a delay can only lower the count.)
        let pings = live()?.pings ?? []
        let allowed = Int((ContinuousClock.now - started) / .milliseconds(500)) + 1
        #expect(pings.count <= allowed, "\(pings.count) pings within \(ContinuousClock.now - started) at a 500 ms interval")
        #expect(Set(live()?.pingPayloads ?? []).count == live()?.pingPayloads.count, "ping payloads must identify each ping")
        #expect(live()?.pingPayloads.first?.starts(with: Array("wsr".utf8)) == true)
        // The dead one: reconnected at least twice, each connection dropped after its unanswered ping.
        #expect(eventually { server.recorder.connections.filter { $0.path.hasPrefix("/dead") }.count >= 3 })
        let dead = server.recorder.connections.filter { $0.path.hasPrefix("/dead") }
        for connection in dead.dropLast() { #expect(connection.closed) }
        #expect(daemon.log.contains("no pong within"))
        #expect(server.recorder.connections.filter { $0.path == "/live" }.count == 1, "a healthy peer must not be reconnected")
        #expect(daemon.stop() == 0)
    }

    @Test("reconnect delays grow with full jitter within the configured bounds; then the restarted server is reached")
    func backoffBoundsAndRestart() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, upstreams:
            Self.upstream("flaky", "\(server.url)/x?status=503")), in: dir)
        #expect(eventually(timeout: .seconds(30)) { server.recorder.connections.count >= 7 })
        let times = server.recorder.connections.map(\.openedAt)
        let gaps = zip(times, times.dropFirst()).map { $1 - $0 }
        // initial 200ms, multiplier 2, max 2s: attempt n waits at most min(2s, 200ms * 2^n) (+ scheduling slack).
        for (n, gap) in gaps.enumerated() {
            let ceiling = min(Duration.seconds(2), .milliseconds(200) * (1 << n))
            #expect(gap <= ceiling + .milliseconds(300), "attempt \(n + 1) waited \(gap), ceiling \(ceiling)")
            #expect(gap >= .milliseconds(90), "attempt \(n + 1) waited only \(gap): tight loop")
        }
        #expect(Set(gaps.map { $0 / .milliseconds(10) }).count > 1, "delays without jitter: \(gaps)")
        #expect(daemon.log.contains("503"), "the status line should be logged")

        // Server killed and restarted on the same port: the daemon comes back on its own.
        let port = server.port
        await server.stop()
        let restarted = try await SimulatorServer.start(port: port, group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await restarted.stop() } }
        restarted.setValidTokens(nil)
        // (The restarted server accepts: path status=503 still applies, so point at what the daemon requests.)
        #expect(eventually(timeout: .seconds(30)) { !restarted.recorder.connections.isEmpty })
        #expect(daemon.stop() == 0)
    }

    @Test("subscribe messages are sent, in order, on every connect before anything else")
    func subscribeOnEveryConnect() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, upstreams:
            Self.upstream("sub", "\(server.url)/s?count=2&close=4000",
                          "subscribe = ['{\"op\":\"subscribe\",\"ch\":\"a\"}', { binary = \"AAEC\" }, { text = \"second\" }]")), in: dir)
        #expect(eventually { server.recorder.connections.filter { $0.closeCodeReceived != nil }.count >= 3 })
        #expect(daemon.stop() == 0)
        for connection in server.recorder.acceptedConnections.filter({ $0.closeCodeReceived != nil }) {
            #expect(connection.textMessages == ["{\"op\":\"subscribe\",\"ch\":\"a\"}", "second"])
            #expect(connection.binaryMessages == [[0, 1, 2]])
        }
    }

    @Test("a fatal close code stops only that upstream; 429 with Retry-After is honoured")
    func fatalCodeAndRetryAfter() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, upstreams:
            Self.upstream("fatal", "\(server.url)/fatal?count=1&close=4100", "fatal_close_codes = [4100]") +
            Self.upstream("busy", "\(server.url)/busy?status=429&retry_after=2") +
            Self.upstream("other", "\(server.url)/other?count=1&close=4000")), in: dir)
        // "other" keeps reconnecting; meanwhile "fatal" must stay at its single connection.
        #expect(eventually(timeout: .seconds(30)) { server.recorder.connections.filter { $0.path.hasPrefix("/other") }.count >= 4 })
        #expect(server.recorder.connections.filter { $0.path.hasPrefix("/fatal") }.count == 1)
        #expect(daemon.log.contains("4100"))
        #expect(eventually { server.recorder.connections.filter { $0.path.hasPrefix("/busy") }.count >= 2 })
        let busy = server.recorder.connections.filter { $0.path.hasPrefix("/busy") }.map(\.openedAt)
        for (a, b) in zip(busy, busy.dropFirst()) {
            #expect(b - a >= .milliseconds(1900), "Retry-After: 2 not honoured: \(b - a)")
        }
        #expect(daemon.stop() == 0)
    }

    @Test("IPv6: an upstream on [::1] is reached, with the bracketed Host header")
    func ipv6Loopback() async throws {
        let server = try await SimulatorServer.start(host: "::1", group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, upstreams:
            Self.upstream("v6", "ws://[::1]:\(server.port)/v6?count=3")), in: dir)
        #expect(eventually { Self.messages(dir).count == 3 })
        #expect(daemon.stop() == 0)
        #expect(server.recorder.connections.first?.header("Host") == "[::1]:\(server.port)")
    }
}
