import Foundation
import Testing
import WSRelayTestSupport

/// `placement = "message"` through the real binary against the independent Python peer: the token goes as
/// the first message, the subscriptions wait for the `auth_ok` reply, and a server that never replies is
/// closed with 1008 "auth timeout" at `auth_timeout` (then reconnected).
@Suite("auth message gate (real binary)", .mayBlock)
struct AuthMessageTests {
    static func config(_ dir: TemporaryDirectory, query: String, port: Int) -> String {
        UpstreamTests.config(dir, upstreams: UpstreamTests.upstream(
            "gated", "ws://127.0.0.1:\(port)/feed?\(query)",
            """
            auth = "msg"
            subscribe = ["sub-1", "sub-2"]
            """) + """

            [auth.msg]
            type = "static"
            token_file = "\(dir.file("token"))"
            placement = "message"
            auth_message = "{\\"op\\":\\"auth\\",\\"token\\":\\"{token}\\"}"
            auth_ok = "\\"ok\\":true"
            auth_timeout = "1s"
            """)
    }

    private func texts(_ peer: PythonPeer) -> [String] {
        peer.events.compactMap { event in
            if event["event"] as? String == "replied" { return "<replied>" }
            return event["event"] as? String == "text" ? event["data"] as? String : nil
        }
    }

    @Test("subscriptions follow the matching auth reply, never before it")
    func subscriptionsWaitForTheReply() throws {
        let peer = try PythonPeer.start()
        defer { peer.stop() }
        let dir = try TemporaryDirectory()
        try "s3cret-token\n".write(toFile: dir.file("token"), atomically: true, encoding: .utf8)
        // The reply comes 300 ms late: subscribing early would show up before "<replied>" in the peer's record.
        let reply = #"{"op":"auth","ok":true}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let daemon = try RunningDaemon(config: Self.config(dir, query: "auth_reply=\(reply)&auth_delay_ms=300", port: peer.port), in: dir)
        #expect(eventually { texts(peer).count >= 4 }, "\(texts(peer))")
        #expect(daemon.stop() == 0)
        #expect(Array(texts(peer).prefix(4)) == [#"{"op":"auth","token":"s3cret-token"}"#, "<replied>", "sub-1", "sub-2"])
    }

    @Test("no matching reply within auth_timeout: closed with 1008, no subscriptions, reconnected")
    func noReplyClosesWith1008() throws {
        let peer = try PythonPeer.start()
        defer { peer.stop() }
        let dir = try TemporaryDirectory()
        try "s3cret-token\n".write(toFile: dir.file("token"), atomically: true, encoding: .utf8)
        let reply = "not-ok".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let daemon = try RunningDaemon(config: Self.config(dir, query: "auth_reply=\(reply)", port: peer.port), in: dir)
        func closes() -> [[String: Any]] { peer.events.filter { $0["event"] as? String == "closed" } }
        #expect(eventually { closes().count >= 2 }, "\(peer.events)")
        #expect(daemon.stop() == 0)
        #expect(closes().prefix(2).allSatisfy { ($0["code"] as? NSNumber)?.intValue == 1008 && $0["reason"] as? String == "auth timeout" },
                "\(closes())")
        #expect(!texts(peer).contains("sub-1"), "\(texts(peer))")
    }
}
