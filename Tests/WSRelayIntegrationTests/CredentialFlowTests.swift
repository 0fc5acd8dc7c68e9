import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// Part 3 through the real binary: a real token endpoint and a real WebSocket server that accepts only the
/// current token. The endpoint issues `tok-N` for its N-th request and the server then accepts only that.
@Suite("credentials end to end", .mayBlock, .serialized, .timeLimit(.minutes(1)))
struct CredentialFlowTests {
    static let refreshToken = "rt-initial-secret-7f3a"

    static func config(_ dir: TemporaryDirectory, endpoint: TokenEndpoint, upstreams: [(name: String, url: String)]) throws -> String {
        try dir.write("refresh_token", refreshToken + "\n", mode: 0o600)
        let blocks = upstreams.map { upstream in
            """
            [[upstream]]
            name = "\(upstream.name)"
            url = "\(upstream.url)"
            auth = "main"
            [upstream.reconnect]
            initial = "200ms"
            max = "2s"

            """
        }.joined()
        return """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"
            log_level = "trace"

            \(blocks)
            [auth.main]
            type = "oauth2"
            token_url = "\(endpoint.url)"
            client_id = "wsrelay-test"
            refresh_token_file = "\(dir.file("refresh_token"))"
            retry_initial = "200ms"
            retry_max = "2s"

            [[sink]]
            type = "file"
            path = "\(dir.file("out.jsonl"))"
            fsync = "never"
            """
    }

    /// The endpoint issues tok-N and makes the server accept exactly that token from then on.
    static func rotate(_ endpoint: TokenEndpoint, _ server: SimulatorServer) {
        endpoint.setDefault { request in
            let token = "tok-\(request.number)"
            server.setValidTokens([token])
            return .token(access: token, expiresIn: 3600)
        }
    }

    static func bearer(_ connection: SimulatorRecorder.Connection) -> String? {
        connection.header("Authorization").map { String($0.dropFirst("Bearer ".count)) }
    }

    @Test("refresh before the first connect; after each 4001 exactly one refresh and a reconnect with the new token; no secret in the logs")
    func refreshOnClose4001() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton,
                                                     options: { var o = SimulatorServer.Options(); o.requiredTokens = []; return o }())
        let endpoint = try await TokenEndpoint.start()
        defer { Task { await server.stop(); await endpoint.shutdown() } }
        Self.rotate(endpoint, server)
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, endpoint: endpoint, upstreams: [
            ("feed", "\(server.url)/feed?count=3&close=4001"),
        ]), in: dir)
        #expect(eventually {
            let accepted = server.recorder.acceptedConnections
            return accepted.count >= 4 && accepted.filter { $0.closeCodeReceived == 4001 }.count >= 3
        })
        #expect(daemon.stop() == 0)

        let accepted = server.recorder.acceptedConnections
        #expect(server.recorder.connections.allSatisfy { $0.accepted }, "no attempt should have used a stale token")
        // The first connection used the token fetched before it; after every 4001 the next connection used a
        // token fetched after it, the next in line: one refresh per rejection, none wasted. (A connection
        // that ended another way first, which a loaded machine can cause, keeps its still-valid token.)
        #expect(Self.bearer(try #require(accepted.first)) == "tok-1")
        for (previous, next) in zip(accepted, accepted.dropFirst()) {
            let number = { (c: SimulatorRecorder.Connection) in Self.bearer(c).flatMap { Int($0.dropFirst(4)) } ?? 0 }
            if previous.closeCodeReceived == 4001 {
                #expect(number(next) == number(previous) + 1, "after 4001, \(Self.bearer(previous) ?? "none") then \(Self.bearer(next) ?? "none")")
            } else {
                #expect(number(next) >= number(previous))
            }
        }
        #expect(accepted.filter { $0.closeCodeReceived == 4001 }.count >= 3, "\(accepted.map(\.closeCodeReceived))")
        #expect(endpoint.requestCount <= accepted.count + 1)
        let first = try #require(endpoint.requests.first)
        #expect(first.form["grant_type"] == "refresh_token")
        #expect(first.form["refresh_token"] == Self.refreshToken)
        // Messages of every connection arrived, seq continuous across reconnects.
        let lines = EnvelopeLine.parse(file: dir.file("out.jsonl"))
        #expect(lines.map(\.seq) == countingUp(to: lines.count).map { Optional($0) })
        for secret in [Self.refreshToken] + (1...accepted.count).map({ "tok-\($0)" }) {
            #expect(!daemon.log.contains(secret), "secret \(secret) leaked into the log")
        }
    }

    @Test("20 upstreams sharing one credential, all closed with 4001 at once: exactly one refresh, all reconnect with the new token")
    func sharedRefresh() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton,
                                                     options: { var o = SimulatorServer.Options(); o.requiredTokens = []; return o }())
        let endpoint = try await TokenEndpoint.start()
        defer { Task { await server.stop(); await endpoint.shutdown() } }
        Self.rotate(endpoint, server)
        let dir = try TemporaryDirectory()
        let upstreams = (1...20).map { ("u\($0)", "\(server.url)/u\($0)") }
        let daemon = try RunningDaemon(config: Self.config(dir, endpoint: endpoint, upstreams: upstreams), in: dir)
        #expect(eventually { server.openConnectionCount == 20 })
        #expect(endpoint.requestCount == 1, "one refresh for 20 upstreams at start, got \(endpoint.requestCount)")

        server.closeAll(code: 4001, reason: "token expired")
        #expect(eventually { server.recorder.acceptedConnections.count == 40 && server.openConnectionCount == 20 })
        #expect(endpoint.requestCount == 2, "exactly one refresh for the storm, got \(endpoint.requestCount)")
        let second = server.recorder.acceptedConnections.dropFirst(20)
        #expect(second.allSatisfy { Self.bearer($0) == "tok-2" })
        #expect(server.recorder.connections.filter { !$0.accepted }.isEmpty, "no attempt with a stale token")
        #expect(daemon.stop() == 0)
    }

    @Test("a 401 on the handshake leads to one refresh and a successful connection")
    func refreshOn401() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton,
                                                     options: { var o = SimulatorServer.Options(); o.requiredTokens = ["fresh"]; return o }())
        let endpoint = try await TokenEndpoint.start()
        defer { Task { await server.stop(); await endpoint.shutdown() } }
        endpoint.enqueue(.token(access: "stale"), .token(access: "fresh"))
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, endpoint: endpoint, upstreams: [("feed", "\(server.url)/feed?count=2")]), in: dir)
        #expect(eventually { server.recorder.acceptedConnections.count == 1 })
        let attempts = server.recorder.connections
        #expect(attempts.first?.status == 401)
        #expect(attempts.last.map(Self.bearer) == "fresh")
        #expect(endpoint.requestCount == 2)
        #expect(eventually { EnvelopeLine.parse(file: dir.file("out.jsonl")).count == 2 })
        #expect(daemon.stop() == 0)
        #expect(!daemon.log.contains("stale") && !daemon.log.contains("fresh\""), "token values in the log")
    }
}
