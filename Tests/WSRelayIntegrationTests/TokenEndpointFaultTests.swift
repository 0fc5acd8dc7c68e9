import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// Issue 13, item 3 through the real binary: a token endpoint that hangs, answers 500, answers garbage, then
/// issues a token the upstream rejects, before it is healthy again. Retries are bounded and spaced, each
/// failure is a clear log line, no secret is in any of them, and the upstream connects by itself at the end.
@Suite("token endpoint faults", .mayBlock, .serialized, .timeLimit(.minutes(2)))
struct TokenEndpointFaultTests {
    @Test("hang, 500, garbage, a rejected token, then healthy: bounded retries, clear lines, no secret, recovery")
    func faultyTokenEndpointThenRecovery() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton,
                                                     options: { var o = SimulatorServer.Options(); o.requiredTokens = []; return o }())
        let endpoint = try await TokenEndpoint.start()
        defer { Task { await server.stop(); await endpoint.shutdown() } }
        // In order: no answer, HTTP 500, not JSON, a token the upstream does not accept; then tok-N, accepted.
        endpoint.enqueue(.hang, .status(500, body: "internal trouble"), .json("<html>not json"),
                         .token(access: "tok-the-upstream-rejects", expiresIn: 3600))
        CredentialFlowTests.rotate(endpoint, server)
        let dir = try TemporaryDirectory()
        var config = try CredentialFlowTests.config(dir, endpoint: endpoint, upstreams: [
            ("feed", "\(server.url)/feed?count=100000000&size=50&rate=50"),
        ])
        config = config.replacingOccurrences(of: "retry_initial = \"200ms\"", with: "retry_initial = \"200ms\"\ntimeout = \"1s\"")
        let daemon = try RunningDaemon(config: config, in: dir)
        #expect(eventually(timeout: .seconds(40)) { !server.recorder.acceptedConnections.isEmpty }, "\(daemon.log)")
        #expect(eventually { EnvelopeLine.parse(file: dir.file("out.jsonl")).count > 50 })
        let requests = endpoint.requestCount
        #expect(daemon.stop() == 0)

        // Bounded: the four faults, the good token, and not a request more than the backoff allows.
        #expect(requests >= 5 && requests <= 8, "\(requests) token requests")
        let log = daemon.log
        #expect(log.contains("did not answer within"), "the hang is named")
        #expect(log.contains("HTTP 500"), "the 500 is named")
        let failures = log.components(separatedBy: "\n").filter { $0.contains("credential refresh failed") }
        #expect(failures.count >= 3, "one line per failed refresh: \(failures)")
        // The rejected token was tried once, then refreshed; it never connected.
        let rejected = server.recorder.connections.filter { CredentialFlowTests.bearer($0) == "tok-the-upstream-rejects" }
        #expect(rejected.count == 1 && rejected.allSatisfy { !$0.accepted })
        #expect(server.recorder.acceptedConnections.allSatisfy { CredentialFlowTests.bearer($0)?.hasPrefix("tok-") == true })
        for secret in [CredentialFlowTests.refreshToken, "tok-the-upstream-rejects"] + (1...requests).map({ "tok-\($0)" }) {
            #expect(!log.contains(secret), "secret \(secret) in the log")
        }
        let lines = EnvelopeLine.parse(file: dir.file("out.jsonl"))
        #expect(lines.map(\.seq) == (1..<(lines.count + 1)).map { Optional($0) })
    }
}
