import Foundation
import NIOPosix
import Testing
import WSRelayCore
import WSRelaySimulator
import WSRelayTestSupport

/// Part 6 through the real binary: the control socket, `wsrelay status` and the actions an operator takes
/// without a restart. Upstreams are the in-process NIO simulator or the independent Python peer.
@Suite("control socket and status", .mayBlock, .serialized, .timeLimit(.minutes(2)))
struct ControlTests {
    static func config(_ dir: TemporaryDirectory, upstreams: String, daemonExtra: String = "") -> String {
        """
        [daemon]
        state_dir = "\(dir.path)"
        control_socket = "\(dir.file("control.sock"))"
        log_level = "debug"
        \(daemonExtra)

        \(upstreams)

        [[sink]]
        type = "file"
        path = "\(dir.file("out.jsonl"))"
        fsync = "never"
        """
    }

    static func upstream(_ name: String, _ url: String, _ extra: String = "") -> String {
        """
        [[upstream]]
        name = "\(name)"
        url = "\(url)"
        ping_interval = "1s"
        pong_timeout = "1s"
        \(extra)
        [upstream.reconnect]
        initial = "2s"
        max = "4s"

        """
    }

    @Test("status shows a killed upstream server: close cause and next retry; the other upstream stays open")
    func killedUpstreamShowsInStatus() async throws {
        let python = try PythonPeer.start()
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { python.stop(); Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, upstreams:
            Self.upstream("market", "ws://127.0.0.1:\(python.port)/feed?count=3") +
            Self.upstream("news", "\(server.url)/news?count=2")), in: dir)
        defer { daemon.stop() }

        #expect(eventually {
            let report = ControlSocket.status(dir)
            return report?.upstreams.allSatisfy { $0.state == "open" } == true
                && report?.upstreams.first { $0.name == "market" }?.messages == 3
        }, "\(String(describing: ControlSocket.status(dir)))")
        let before = try #require(ControlSocket.upstream("market", in: dir))
        #expect(before.nextRetryAt == nil)
        #expect(before.lastMessageAt != nil)

        python.stop()  // SIGKILL: the kernel closes its socket, no close frame

        var seen: StatusReport.Upstream?
        #expect(eventually {
            seen = ControlSocket.upstream("market", in: dir)
            return seen?.state == "backing off" && seen?.nextRetryAt != nil
        }, "last seen: \(String(describing: seen))")
        let down = try #require(seen)
        #expect(down.disconnects["1006"] == 1, "\(down.disconnects)")
        #expect((down.nextRetryInSeconds ?? -1) >= 0)
        #expect(down.messages == 3)
        let report = try #require(ControlSocket.status(dir))
        #expect(report.upstreams.first { $0.name == "news" }?.state == "open")
        // The one-line summary (STATUS=) is coalesced, so it may follow the upstream's own state a moment later.
        #expect(eventually { ControlSocket.status(dir)?.daemon.summary.hasPrefix("1/2 upstreams down (market:") == true },
                "\(String(describing: ControlSocket.status(dir)?.daemon.summary))")

        // The CLI: a readable table, exit status 1 while an upstream is down; --json is the raw reply.
        let table = try daemon.command(["status"])
        #expect(table.status == 1)
        #expect(table.stdout.contains("market") && table.stdout.contains("backing off"), "\(table.stdout)")
        #expect(table.stdout.contains("UPSTREAMS") && table.stdout.contains("SINKS"))
        let json = try daemon.command(["status", "--json"], name: "json")
        let decoded = try StatusReport.decoder().decode(StatusReport.self, from: Data(json.stdout.utf8))
        #expect(decoded.upstreams.map(\.name) == ["market", "news"])
    }

    @Test("pause stops an upstream until resume; reconnect opens a new connection with a higher epoch")
    func pauseResumeReconnect() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, upstreams: Self.upstream("feed", "\(server.url)/feed")), in: dir)
        defer { daemon.stop() }

        #expect(eventually { ControlSocket.upstream("feed", in: dir)?.state == "open" })
        let first = try #require(ControlSocket.upstream("feed", in: dir)).epoch

        let reconnect = try daemon.command(["reconnect", "feed"])
        #expect(reconnect.status == 0, "\(reconnect.stderr)")
        #expect(eventually {
            let u = ControlSocket.upstream("feed", in: dir)
            return u?.state == "open" && (u?.epoch ?? 0) > first
        })
        let second = try #require(ControlSocket.upstream("feed", in: dir)).epoch
        // The server may read the old connection's close frame after the new connection is up (a loaded machine).
        #expect(eventually { server.recorder.acceptedConnections.first?.closeCodeReceived == 1000 })

        let pause = try daemon.command(["pause", "feed"])
        #expect(pause.status == 0 && pause.stdout.contains("paused"), "\(pause.stdout)\(pause.stderr)")
        #expect(eventually { ControlSocket.upstream("feed", in: dir)?.state == "paused" })
        #expect(eventually { server.recorder.acceptedConnections.allSatisfy { $0.closed } })
        let paused = try #require(ControlSocket.upstream("feed", in: dir))
        #expect(paused.epoch == second && paused.paused && paused.nextRetryAt == nil)
        let connectionsWhilePaused = server.recorder.connections.count

        let resume = try daemon.command(["resume", "feed"])
        #expect(resume.status == 0)
        #expect(eventually {
            let u = ControlSocket.upstream("feed", in: dir)
            return u?.state == "open" && (u?.epoch ?? 0) > second
        })
        // The server records a connection on its own event loop, possibly after the daemon saw the 101.
        #expect(eventually { server.recorder.connections.count > connectionsWhilePaused })
        #expect(server.recorder.connections.count == connectionsWhilePaused + 1, "one new connection after resume")

        let unknown = try daemon.command(["pause", "nosuch"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no upstream named \"nosuch\"; known: feed"), "\(unknown.stderr)")
    }

    @Test("the control socket survives garbage and answers the next request on the same connection")
    func garbageLines() throws {
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, upstreams: Self.upstream("feed", "ws://127.0.0.1:9/x")), in: dir)
        defer { daemon.stop() }
        let socket = dir.file("control.sock")
        var garbage: [UInt8] = Array("{\"command\":\n".utf8)     // broken JSON
        garbage += Array("[1,2,3]\n".utf8)                         // JSON, not an object
        garbage += [0xFF, 0xFE, 0x00, 0x80, 0x0A]                  // binary junk and a newline
        garbage += Array("{\"command\":\"pause\"}\n".utf8)         // missing argument
        garbage += Array("{\"command\":\"status\"}\n".utf8)        // then a real request
        let replies = try ControlSocket.exchange(socket, garbage, replies: 5)
        #expect(replies.count == 5, "\(replies)")
        let decoded = replies.compactMap { try? ControlReply.decode(Array($0.utf8)) }
        #expect(decoded.count == 5)
        #expect(decoded.prefix(4).allSatisfy { !$0.ok && $0.error != nil }, "\(replies)")
        #expect(decoded.last?.ok == true && decoded.last?.status?.upstreams.first?.name == "feed")

        // An endless line ends that connection with a reason; the socket keeps serving others.
        let flood = [UInt8](repeating: UInt8(ascii: "x"), count: 200_000)
        let overlong = try ControlSocket.exchange(socket, flood, replies: 1)
        #expect(overlong.first?.contains("longer than") == true, "\(overlong)")
        #expect(ControlSocket.status(dir)?.upstreams.count == 1)
        #expect(processIsAlive(daemon.process.pid))
    }

    @Test("a peer that is not root, the daemon's user or in control_allow_gids is refused; listed groups are allowed")
    func refusesDisallowedPeer() throws {
        try #require(getuid() == 0, "needs root to connect as another user")
        let nobody: UInt32 = 65534
        for allowed in [false, true] {
            let dir = try TemporaryDirectory()
            chmod(dir.path, 0o755)
            let daemon = try RunningDaemon(config: Self.config(
                dir, upstreams: Self.upstream("feed", "ws://127.0.0.1:9/x"),
                daemonExtra: allowed ? "control_allow_gids = [\(nobody)]" : ""), in: dir)
            defer { daemon.stop() }
            let socket = dir.file("control.sock")
            var info = stat()
            #expect(stat(socket, &info) == 0 && info.st_mode & 0o777 == 0o660)
            // Loosen the file mode so only the daemon's own peer check stands between nobody and the socket.
            chmod(socket, 0o666)
            let asNobody = try WSRelayProcess.runExternal(
                "/usr/bin/setpriv", ["--reuid=\(nobody)", "--regid=\(nobody)", "--clear-groups",
                                     WSRelayProcess.binaryPath, "status", "--json", "--socket", socket], directory: dir)
            if allowed {
                #expect(asNobody.stdout.contains("\"upstreams\""), "\(asNobody.stdout)\(asNobody.stderr)")
            } else {
                #expect(asNobody.status == 1)
                #expect(asNobody.stderr.contains("permission denied: uid \(nobody)"), "\(asNobody.stderr)")
                #expect(daemon.log.contains("control socket: refused pid"))
            }
            #expect(ControlSocket.status(dir) != nil)  // root still gets in
        }
    }
}

