import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// Issue 13, item 3: links that die without closing, and connections that stall, trickle or are cut. In
/// each case no message the daemon received is lost or torn (the file holds `seq` 1...n as whole lines, and
/// every message the daemon counted), and the daemon recovers by itself.
@Suite("dead links and stalls", .mayBlock, .serialized, .timeLimit(.minutes(2)))
struct DeadLinkTests {
    static func config(_ dir: TemporaryDirectory, url: String) -> String {
        """
        [daemon]
        state_dir = "\(dir.path)"
        control_socket = "\(dir.file("control.sock"))"
        log_level = "debug"

        [[upstream]]
        name = "feed"
        url = "\(url)"
        ping_interval = "1s"
        pong_timeout = "1s"
        connect_timeout = "2s"
        [upstream.reconnect]
        initial = "200ms"
        max = "1s"

        [[sink]]
        type = "file"
        path = "\(dir.file("out.jsonl"))"
        fsync = "never"
        events = true
        """
    }

    static func lines(_ dir: TemporaryDirectory) -> [EnvelopeLine] { EnvelopeLine.parse(file: dir.file("out.jsonl")) }
    static func messages(_ dir: TemporaryDirectory) -> [EnvelopeLine] { lines(dir).filter { $0.event == nil } }
    static func events(_ dir: TemporaryDirectory, _ name: String) -> [EnvelopeLine] { lines(dir).filter { $0.event == name } }

    /// Stops the daemon and checks the file: whole lines only, `seq` 1...n without a hole or a repeat, at least
    /// every message the daemon had counted, and each connection's messages in the order the server numbered
    /// them (the server numbers server-wide, and a dead connection it still writes into takes numbers too).
    static func stopAndCheckNothingLost(_ daemon: RunningDaemon, _ dir: TemporaryDirectory) throws {
        let counted = ControlSocket.upstream("feed", in: dir)?.messages ?? 0
        #expect(daemon.stop() == 0, "\(daemon.log)")
        let text = try String(contentsOfFile: dir.file("out.jsonl"), encoding: .utf8)
        #expect(text.hasSuffix("\n"), "torn last line")
        let all = lines(dir)
        #expect(all.count == text.split(separator: "\n").count, "a line that is not whole JSON")
        let messages = all.filter { $0.event == nil }
        #expect(messages.map(\.seq) == (1..<(messages.count + 1)).map { Optional($0) })
        #expect(UInt64(messages.count) >= counted, "the daemon counted \(counted), the file has \(messages.count)")
        for epoch in Set(messages.compactMap(\.epoch)) {
            let numbers = messages.filter { $0.epoch == epoch }.compactMap(\.simulatorNumber)
            #expect(zip(numbers, numbers.dropFirst()).allSatisfy { $1 > $0 }, "out of order within epoch \(epoch)")
        }
    }

    static func wallSeconds(_ ts: String?) -> Double? {
        guard let ts else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: ts.replacingOccurrences(of: #"(\.\d{3})\d+"#, with: "$1", options: .regularExpression))?
            .timeIntervalSince1970
    }

    @Test("a dead link (veth in a namespace taken down): detected within ping_interval + pong_timeout, reconnected when it returns",
          .enabled(if: NetworkNamespace.available, "needs root and iproute2 for a network namespace"))
    func deadLinkInANamespace() async throws {
        let dir = try TemporaryDirectory()
        let namespace = try NetworkNamespace()
        let simulator = URL(fileURLWithPath: WSRelayProcess.binaryPath).deletingLastPathComponent()
            .appendingPathComponent("wsrelay-sim").path
        _ = try namespace.start([simulator, "--host", namespace.innerAddress, "--port", "9001"], output: dir.file("sim.log"))
        #expect(eventually { tcpConnects(namespace.innerAddress, 9001) }, "the simulator in the namespace: \(dir.read("sim.log") ?? "")")
        let daemon = try RunningDaemon(config: Self.config(dir, url: "ws://\(namespace.innerAddress):9001/flood?count=100000000&size=100&rate=200"), in: dir)
        #expect(eventually { Self.messages(dir).count > 300 })

        let downAt = Date().timeIntervalSince1970
        try namespace.setLink(up: false)
        #expect(eventually { !Self.events(dir, "disconnected").isEmpty }, "\(daemon.log)")
        let detectedAt = try #require(Self.wallSeconds(Self.events(dir, "disconnected").first?.object["ts"] as? String))
        // ping_interval + pong_timeout = 2 s, plus 1 s for a loaded machine to run the timers.
        #expect(detectedAt - downAt <= 3.0, "detected \(detectedAt - downAt) s after the link went down")
        #expect(daemon.log.contains("no pong within"))

        try namespace.setLink(up: true)
        #expect(eventually(timeout: .seconds(40)) { Self.events(dir, "connected").count >= 2 }, "\(daemon.log)")
        let before = Self.messages(dir).count
        #expect(eventually { Self.messages(dir).count > before + 200 })
        let epochs = Self.events(dir, "connected").compactMap(\.epoch)
        #expect(epochs == epochs.sorted() && Set(epochs).count == epochs.count)
        try Self.stopAndCheckNothingLost(daemon, dir)
    }

    @Test("through a fault proxy: a paused connection is dropped within ping_interval + pong_timeout, a trickle delivers whole messages, a cut is reconnected")
    func pauseTrickleAndCut() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let proxy = try FaultProxy(to: server.port)
        defer { proxy.stop() }
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, url: "\(proxy.url)/flood?count=100000000&size=100&rate=200"), in: dir)
        #expect(eventually { Self.messages(dir).count > 200 })

        // Pause: bytes stop both ways, nothing is closed. The pong never comes.
        proxy.set(.pause)
        let pausedAt = Date().timeIntervalSince1970
        #expect(eventually { !Self.events(dir, "disconnected").isEmpty }, "\(daemon.log)")
        let detectedAt = try #require(Self.wallSeconds(Self.events(dir, "disconnected").first?.object["ts"] as? String))
        #expect(detectedAt - pausedAt <= 3.0, "detected \(detectedAt - pausedAt) s after the stall began")
        proxy.set(.pass)
        #expect(eventually { Self.events(dir, "connected").count >= 2 && proxy.connectionsAccepted >= 2 })

        // Trickle: the server's bytes one at a time. Messages still arrive, whole.
        proxy.set(.trickle)
        let beforeTrickle = Self.messages(dir).count
        #expect(eventually { Self.messages(dir).count > beforeTrickle + 20 })
        proxy.set(.pass)

        // Cut: RST on the open connection. The daemon reconnects and carries on.
        let connectedBefore = Self.events(dir, "connected").count
        proxy.cutAll()
        #expect(eventually { Self.events(dir, "connected").count > connectedBefore }, "\(daemon.log)")
        let beforeStop = Self.messages(dir).count
        #expect(eventually { Self.messages(dir).count > beforeStop + 100 })
        try Self.stopAndCheckNothingLost(daemon, dir)
    }
}

/// True when a TCP connection to host:port is accepted within a second.
func tcpConnects(_ host: String, _ port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var limit = timeval(tv_sec: 1, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr(host)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}
