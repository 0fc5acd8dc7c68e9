import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// Issue 13, item 3: SIGTERM while many upstreams receive traffic. Exit 0 within `shutdown_timeout`, every
/// connection closed with 1001, every line whole, each upstream's `seq` 1...n. The suite runs 100 upstreams;
/// `scripts/shutdown-many 10000` runs the full figure (README, Reliability).
@Suite("SIGTERM with many upstreams", .mayBlock, .serialized, .timeLimit(.minutes(2)))
struct ManyUpstreamsShutdownTests {
    @Test("100 upstreams with traffic: SIGTERM exits 0 within shutdown_timeout, all closed with 1001, nothing torn")
    func sigtermWithManyUpstreams() async throws {
        let count = 100
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let out = dir.file("out.jsonl")
        let upstreams = (0..<count).map { i in
            """
            [[upstream]]
            name = "u\(i)"
            url = "\(server.url)/u\(i)?count=100000000&size=60&rate=5"

            """
        }.joined()
        let daemon = try RunningDaemon(config: """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"
            shutdown_timeout = "10s"

            \(upstreams)
            [[sink]]
            type = "file"
            path = "\(out)"
            fsync = "never"
            """, in: dir)
        #expect(eventually(timeout: .seconds(60)) {
            ControlSocket.status(dir)?.upstreams.filter { $0.state == "open" && $0.messages > 0 }.count == count
        }, "not all \(count) upstreams received traffic")

        let start = ContinuousClock.now
        daemon.process.signal(SIGTERM)
        let status = daemon.process.waitForExit(timeout: .seconds(30))
        let took = ContinuousClock.now - start
        #expect(status == 0, "\(daemon.log.suffix(2000))")
        #expect(took < .seconds(10), "exit took \(took), longer than shutdown_timeout")
        #expect(!daemon.log.contains("Fatal error"))
        #expect(!daemon.log.contains("did not finish within"))

        // One connection per upstream, unless an attempt failed on the way up (100 upgrades at once on a loaded
        // machine can pass the handshake timeout): the daemon then dropped that one before SIGTERM, and its
        // next one is the one SIGTERM closed. (Which of the two the server recorded first depends on when it got
        // round to the late upgrade, so order says nothing.)
        let connections = server.recorder.connections
        func upstreamName(_ connection: SimulatorRecorder.Connection) -> String {
            String(connection.path.dropFirst().prefix { $0 != "?" })
        }
        let byUpstream = Dictionary(grouping: connections, by: upstreamName)
        #expect(byUpstream.count == count)
        let notClosed = byUpstream.filter { _, connections in
            connections.filter { $0.accepted && $0.closeCodeReceived == 1001 }.count != 1
                || !connections.allSatisfy { $0.closeCodeReceived == 1001 || ($0.closedAt.map { $0 < start } ?? false) }
        }
        let log = daemon.log.split(separator: "\n")
        #expect(notClosed.isEmpty, """
            not closed with 1001: \(notClosed.mapValues { $0.map { "\($0.accepted ? "accepted" : "refused") \($0.closeCodeReceived.map(String.init) ?? "no close")" } })
            \(notClosed.keys.sorted().map { name in log.filter { $0.hasSuffix("upstream=\(name)") || $0.contains("upstream=\(name) ") }.suffix(10).joined(separator: "\n") }.joined(separator: "\n"))
            """)
        let text = try String(contentsOfFile: out, encoding: .utf8)
        #expect(text.hasSuffix("\n"), "torn last line")
        let lines = EnvelopeLine.parse(file: out)
        #expect(lines.count == text.split(separator: "\n").count, "a line that is not whole JSON")
        var seqs: [String: [Int]] = [:]
        for line in lines { seqs[line.upstream ?? "", default: []].append(line.seq ?? -1) }
        #expect(seqs.count == count)
        #expect(seqs.values.allSatisfy { $0 == Array(1...$0.count) }, "an upstream's seq has a hole")
        // Everything the connection SIGTERM closed sent before our 1001 is in the file, and nothing else (an
        // upgrade the daemon gave up on was never read).
        for (name, sent) in byUpstream.mapValues({ $0.filter { $0.closeCodeReceived == 1001 }.reduce(0) { $0 + $1.messagesSent } }) {
            #expect(seqs[name]?.count == sent, "\(name): file \(seqs[name]?.count ?? 0), sent \(sent)")
        }
    }
}
