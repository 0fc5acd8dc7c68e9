import Foundation
import NIOPosix
import Testing
import WSRelaySimulator

/// SIGTERM's promise: every message received before it is in the file when the process exits 0.
@Suite("graceful shutdown", .timeLimit(.minutes(1)))
struct ShutdownTests {
    @Test("SIGTERM during a flood: the file holds exactly what the server sent before it saw our 1001, in order, no torn line")
    func sigtermDuringFlood() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let out = dir.file("out.jsonl")
        let daemon = try RunningDaemon(config: """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"

            [[upstream]]
            name = "flood"
            url = "\(server.url)/flood?count=50000000&size=100&rate=4000"

            [[sink]]
            type = "file"
            path = "\(out)"
            fsync = "never"
            """, in: dir)
        #expect(eventually { (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0 > 1_000_000 })
        #expect(daemon.stop() == 0, "\(daemon.log)")

        let connection = try #require(server.recorder.connections.first)
        #expect(connection.closeCodeReceived == 1001)
        let text = try String(contentsOfFile: out, encoding: .utf8)
        #expect(text.hasSuffix("\n"), "torn last line")
        let lines = EnvelopeLine.parse(file: out)
        #expect(lines.count == text.split(separator: "\n").count, "a line that is not valid JSON")
        #expect(lines.count == connection.messagesSent, "file has \(lines.count), server sent \(connection.messagesSent)")
        #expect(lines.map(\.seq) == Array(1...lines.count).map { Optional($0) })
        #expect(lines.last?.simulatorNumber == connection.messagesSent)
    }
}
