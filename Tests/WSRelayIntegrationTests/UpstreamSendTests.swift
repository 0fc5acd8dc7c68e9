import Foundation
import Testing
import WSRelayCore
import WSRelayTestSupport

/// The way back (issue 14 item 3) through the real binary: subscribers of a unix sink with `allow_send` and
/// `wsrelay send` write on the shared upstream connection; a peer that is not allowed never does; persisted
/// messages follow the subscribe list on every reconnect and after a restart until `wsrelay unsend`. The
/// upstream is the independent Python `websockets` server, which logs every message it receives.
@Suite("send on an upstream (real binary)", .mayBlock, .serialized, .timeLimit(.minutes(2)))
struct UpstreamSendTests {
    static func config(_ dir: TemporaryDirectory, port: Int) -> String {
        """
        [daemon]
        state_dir = "\(dir.file("state"))"
        control_socket = "\(dir.file("control.sock"))"
        log_level = "debug"

        [[upstream]]
        name = "market"
        url = "ws://127.0.0.1:\(port)/feed"
        subscribe = ["cfg-sub"]
        [upstream.reconnect]
        initial = "200ms"
        max = "1s"

        [[sink]]
        type = "unix"
        path = "\(dir.file("send.sock"))"
        allow_send = true

        [[sink]]
        type = "unix"
        path = "\(dir.file("read-only.sock"))"

        [[sink]]
        type = "unix"
        path = "\(dir.file("locked.sock"))"
        allow_send = true
        allow_uids = [12345]
        """
    }

    /// The texts the server received, one list per connection, in order.
    static func received(_ peer: PythonPeer) -> [[String]] {
        var connections: [[String]] = []
        for event in peer.events {
            switch event["event"] as? String {
            case "connect": connections.append([])
            case "text": if !connections.isEmpty, let data = event["data"] as? String { connections[connections.count - 1].append(data) }
            default: break
            }
        }
        return connections
    }

    static func line(_ object: [String: Any]) -> [UInt8] {
        Array(try! JSONSerialization.data(withJSONObject: object)) + [10]
    }

    static func send(_ text: String, persist: Bool = false, to upstream: String = "market") -> [UInt8] {
        line(["send": ["upstream": upstream, "text": text, "persist": persist]])
    }

    static func object(_ line: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
    }

    @Test("allowed subscribers and wsrelay send reach the upstream; refused ones never do; persist/unsend across reconnect and restart")
    func sendPersistUnsend() throws {
        let python = try PythonPeer.start()
        defer { python.stop() }
        let dir = try TemporaryDirectory()
        let config = Self.config(dir, port: python.port)
        var daemon = try RunningDaemon(config: config, in: dir)
        defer { daemon.stop() }
        #expect(eventually { ControlSocket.upstream("market", in: dir)?.state == "open" && Self.received(python).last == ["cfg-sub"] })

        // Allowed subscriber: an ack per send, the server gets exactly these messages on the open connection.
        let ok = try ControlSocket.exchange(dir.file("send.sock"), Self.send("hello-1") + Self.send("hello-2"), replies: 2)
        #expect(ok.map { Self.object($0)["ok"] as? String } == ["send", "send"], "\(ok)")
        #expect(ok.allSatisfy { Self.object($0)["sent"] as? Bool == true && Self.object($0)["upstream"] as? String == "market" })

        // Refusals, each an error line naming the upstream: allow_send off, unknown upstream, too large.
        let readOnly = try ControlSocket.exchange(dir.file("read-only.sock"), Self.send("nope-read-only"), replies: 1)
        #expect(readOnly == [#"{"error":"send is not allowed on this socket (allow_send = false)","send":"market"}"#], "\(readOnly)")
        let unknown = try ControlSocket.exchange(dir.file("send.sock"), Self.send("nope-unknown", to: "nosuch"), replies: 1)
        #expect(unknown.first?.contains("unknown upstream \\\"nosuch\\\"") == true, "\(unknown)")
        let large = try ControlSocket.exchange(dir.file("send.sock"), Self.send(String(repeating: "x", count: 40_000)), replies: 1)
        #expect(large.first?.contains("message too large: 40000 bytes, at most 32768") == true, "\(large)")
        let invalid = try ControlSocket.exchange(dir.file("send.sock"), Array(#"{"send":{"upstream":"market"}}"#.utf8) + [10], replies: 1)
        #expect(invalid.first?.contains("invalid send: needs \\\"text\\\"") == true, "\(invalid)")
        // A peer outside allow_uids is told and closed before anything it writes is read.
        let locked = try ControlSocket.exchange(dir.file("locked.sock"), Self.send("nope-locked"), replies: 5)
        #expect(locked == [#"{"error":"permission denied: uid \#(geteuid()) is not allowed on this socket"}"#], "\(locked)")

        // The control socket: plain and persisted.
        let sent = try daemon.command(["send", "market", "ctl-1"])
        #expect(sent.status == 0 && sent.stdout.contains("market: 5 bytes sent"), "\(sent.stdout)\(sent.stderr)")
        let persisted = try ControlSocket.exchange(dir.file("send.sock"), Self.send("sub-A", persist: true), replies: 1)
        #expect(Self.object(persisted.first ?? "")["persisted"] as? Bool == true, "\(persisted)")
        let persistedByCLI = try daemon.command(["send", "market", "sub-B", "--persist"])
        #expect(persistedByCLI.status == 0, "\(persistedByCLI.stderr)")
        #expect(eventually { Self.received(python).last == ["cfg-sub", "hello-1", "hello-2", "ctl-1", "sub-A", "sub-B"] },
                "\(Self.received(python))")
        #expect(ControlSocket.upstream("market", in: dir)?.persistedSends == ["sub-A", "sub-B"])
        let table = try daemon.command(["status"])
        #expect(table.stdout.contains("market: persisted send: sub-A") && table.stdout.contains("market: persisted send: sub-B"),
                "\(table.stdout)")

        // Every reconnect sends the configured subscribe list, then the persisted messages.
        let connections = Self.received(python).count
        #expect(try daemon.command(["reconnect", "market"]).status == 0)
        #expect(eventually { Self.received(python).count == connections + 1 && Self.received(python).last?.count == 3 })
        #expect(Self.received(python).last == ["cfg-sub", "sub-A", "sub-B"])

        // Not connected: a plain send is refused (not queued); a persisted one is kept for the next connect.
        #expect(try daemon.command(["pause", "market"]).status == 0)
        #expect(eventually { ControlSocket.upstream("market", in: dir)?.state == "paused" })
        let refused = try daemon.command(["send", "market", "while-paused"])
        #expect(refused.status == 1 && refused.stderr.contains("market is not connected (paused); not queued"), "\(refused.stderr)")
        let later = try daemon.command(["send", "market", "sub-C", "--persist"])
        #expect(later.status == 0 && later.stdout.contains("persisted; not connected now"), "\(later.stdout)\(later.stderr)")
        #expect(try daemon.command(["resume", "market"]).status == 0)
        #expect(eventually { Self.received(python).last == ["cfg-sub", "sub-A", "sub-B", "sub-C"] }, "\(Self.received(python))")

        // Restart: the list comes back from state_dir.
        #expect(daemon.stop() == 0)
        unlink(dir.file("notify.sock"))  // the next manager's notify socket
        daemon = try RunningDaemon(config: config, in: dir)
        #expect(eventually { Self.received(python).last == ["cfg-sub", "sub-A", "sub-B", "sub-C"] && ControlSocket.upstream("market", in: dir)?.state == "open" })
        #expect(ControlSocket.upstream("market", in: dir)?.persistedSends == ["sub-A", "sub-B", "sub-C"])

        // unsend removes one; the next connection no longer sends it.
        let unsend = try daemon.command(["unsend", "market", "sub-A"])
        #expect(unsend.status == 0 && unsend.stdout.contains("2 left"), "\(unsend.stdout)\(unsend.stderr)")
        let missing = try daemon.command(["unsend", "market", "sub-A"])
        #expect(missing.status == 1 && missing.stderr.contains("no such persisted message"), "\(missing.stderr)")
        let before = Self.received(python).count
        #expect(try daemon.command(["reconnect", "market"]).status == 0)
        #expect(eventually { Self.received(python).count == before + 1 && Self.received(python).last?.count == 3 })
        #expect(Self.received(python).last == ["cfg-sub", "sub-B", "sub-C"])

        // Nothing a refused request carried ever reached the server.
        let all = Self.received(python).flatMap { $0 }
        #expect(!all.contains { $0.hasPrefix("nope") || $0 == "while-paused" || $0.hasPrefix("xxxx") }, "\(all)")
        #expect(daemon.stop() == 0)
    }
}
