import Foundation
import NIOConcurrencyHelpers
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// `reconnect_before_expiry`: make-before-break token rotation through the real binary, a real token endpoint
/// and a flooding simulator.
@Suite("token rotation end to end", .mayBlock, .serialized, .timeLimit(.minutes(1)))
struct RotationTests {
    @Test("the successor opens before the old connection is closed with 1000; no message is lost and seq stays continuous")
    func makeBeforeBreak() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton,
                                                     options: { var o = SimulatorServer.Options(); o.requiredTokens = []; return o }())
        let endpoint = try await TokenEndpoint.start()
        defer { Task { await server.stop(); await endpoint.shutdown() } }
        // tok-N for the N-th request, valid for 3 s; every token issued so far stays acceptable (the old
        // connection keeps its token while the successor opens with the new one).
        let issued = NIOLockedValueBox<Set<String>>([])
        endpoint.setDefault { request in
            let token = "tok-\(request.number)"
            server.setValidTokens(issued.withLockedValue { $0.insert(token); return $0 })
            return .token(access: token, expiresIn: 3)
        }
        let dir = try TemporaryDirectory()
        try dir.write("refresh_token", CredentialFlowTests.refreshToken + "\n", mode: 0o600)
        let config = """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"
            log_level = "trace"
            # The closing handshake of a retired connection may take half of this. Under a loaded CI machine
            # the simulator once answered a retired connection's 1000 only after the default 5 s, and a message
            # it had written just before was still unread when the daemon gave up on the handshake.
            shutdown_timeout = "30s"

            [[upstream]]
            name = "feed"
            url = "\(server.url)/feed?rate=200&count=1000000"
            auth = "main"
            reconnect_before_expiry = true
            [upstream.reconnect]
            initial = "200ms"
            max = "2s"

            [auth.main]
            type = "oauth2"
            token_url = "\(endpoint.url)"
            client_id = "wsrelay-test"
            refresh_token_file = "\(dir.file("refresh_token"))"
            refresh_skew = "2s"
            retry_initial = "200ms"
            retry_max = "2s"

            [[sink]]
            type = "file"
            path = "\(dir.file("out.jsonl"))"
            fsync = "never"
            """
        let daemon = try RunningDaemon(config: config, in: dir)
        // Three connections means at least two complete rotations (the third has retired the second).
        #expect(eventually(timeout: .seconds(20)) {
            let accepted = server.recorder.acceptedConnections
            return accepted.count >= 3 && accepted.dropLast().allSatisfy(\.closed)
                && Set(EnvelopeLine.parse(file: dir.file("out.jsonl")).compactMap(\.epoch)).count >= 3
        })
        #expect(daemon.stop() == 0)

        let accepted = server.recorder.acceptedConnections
        // What the daemon says about its connections, for the messages of failed expectations below.
        let story = daemon.log.split(separator: "\n")
            .filter { $0.contains("epoch") && ($0.contains("connect") || $0.contains("retir") || $0.contains("clos")) }
            .suffix(40).joined(separator: "\n")
        #expect(accepted.count >= 3)
        #expect(server.recorder.connections.allSatisfy { $0.accepted }, "no attempt with a stale token")
        for (previous, next) in zip(accepted, accepted.dropFirst()) {
            let closedAt = try #require(previous.closedAt, "connection \(previous.id) never closed")
            #expect(next.openedAt < closedAt, "connection \(next.id) opened after \(previous.id) was closed\n\(story)")
            #expect(previous.closeCodeReceived == 1000, "connection \(previous.id) got \(String(describing: previous.closeCodeReceived))\n\(story)")
            #expect(CredentialFlowTests.bearer(previous) != CredentialFlowTests.bearer(next), "rotation reused the token")
        }

        let lines = EnvelopeLine.parse(file: dir.file("out.jsonl"))
        // Messages from every rotation (how many depends on the machine's speed, not on wsrelay).
        #expect(Set(lines.compactMap(\.epoch)).count >= 3)
        #expect(lines.map(\.seq) == Array(1...max(lines.count, 1)).map { Optional($0) }, "seq is not continuous")
        // The simulator numbers its messages from one server-wide counter, so no number is sent twice: every
        // number up to the last delivered one must appear exactly once, from whichever connection sent it.
        let numbers = lines.compactMap(\.simulatorNumber)
        #expect(numbers.count == lines.count)
        #expect(Set(numbers).count == numbers.count, "a message was delivered twice")
        let highest = numbers.max() ?? 0
        let missing = Set(1...max(highest, 1)).subtracting(numbers)
        #expect(missing.isEmpty, """
            \(missing.count) messages lost, e.g. \(missing.sorted().prefix(10)); highest \(highest), \(lines.count) lines; \
            the connections' story:
            \(story)
            """)
        // Messages were stamped with the epochs of at least three connections.
        #expect(Set(lines.compactMap(\.epoch)).count >= 3)
        #expect(!daemon.log.contains("tok-1\""), "token value in the log")
    }
}
