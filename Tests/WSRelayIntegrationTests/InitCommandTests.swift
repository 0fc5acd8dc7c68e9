import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// `wsrelay init` through the real binary: what it prints is a valid config as it is, and, pointed at the
/// simulator, a daemon runs on it and fills the file sink.
@Suite("wsrelay init", .mayBlock, .serialized, .timeLimit(.minutes(1)))
struct InitCommandTests {
    @Test("the default starter config passes check-config without warnings and is commented")
    func defaultPassesCheckConfig() throws {
        let dir = try TemporaryDirectory("init")
        let printed = try WSRelayProcess.run(["init"], directory: dir, name: "init")
        #expect(printed.status == 0, "\(printed.stderr)")
        #expect(printed.stderr.isEmpty, "\(printed.stderr)")
        let config = try dir.write("wsrelay.toml", printed.stdout)
        let checked = try WSRelayProcess.run(["check-config", "--config", config], directory: dir)
        #expect(checked.status == 0, "\(checked.stderr)")
        #expect(checked.stderr.isEmpty, "warnings: \(checked.stderr)")
        #expect(checked.stdout.contains("path = \"/var/log/wsrelay/example.jsonl\""), "\(checked.stdout)")
        let lines = printed.stdout.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("#") }.count >= 20, "a starter config explains itself")
        #expect(lines.filter { $0.hasPrefix("[[upstream]]") }.count == 1)
        #expect(lines.filter { $0.hasPrefix("[[sink]]") }.count == 1)
    }

    @Test("a daemon runs on the starter config against the simulator and writes every message to the file")
    func runsAgainstTheSimulator() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory("init")
        let count = 40
        let printed = try WSRelayProcess.run(
            ["init", "--name", "feed", "--url", "\(server.url)/feed?count=\(count)&size=50&close=1000",
             "--file", dir.file("feed.jsonl")], directory: dir, name: "init")
        #expect(printed.status == 0, "\(printed.stderr)")
        // Only the two machine-wide directories move into the test's own directory (never the machine's /run).
        let config = printed.stdout
            .replacingOccurrences(of: "\"/var/lib/wsrelay\"", with: "\"\(dir.path)\"")
            .replacingOccurrences(of: "\"/run/wsrelay/control.sock\"", with: "\"\(dir.file("control.sock"))\"")
        #expect(config != printed.stdout)
        let daemon = try RunningDaemon(config: config, in: dir)
        let messages = { EnvelopeLine.parse(file: dir.file("feed.jsonl")).filter { $0.event == nil } }
        #expect(eventually { messages().count >= count }, "file has \(messages().count) messages; log:\n\(daemon.log)")
        let first = try #require(messages().first)
        #expect(first.upstream == "feed" && first.seq == 1 && first.type == "text")
        #expect(EnvelopeLine.parse(file: dir.file("feed.jsonl")).contains { $0.event == "connected" },
                "events = true writes connected records")
        #expect(daemon.stop() == 0)
    }

    @Test("values that would not load are refused with exit 64, naming the key")
    func refusesInvalidValues() throws {
        let dir = try TemporaryDirectory("init")
        let badURL = try WSRelayProcess.run(["init", "--url", "http://example.com/"], directory: dir, name: "bad-url")
        #expect(badURL.status == 64)
        #expect(badURL.stdout.isEmpty)
        #expect(badURL.stderr.contains("upstream[0].url"), "\(badURL.stderr)")
        let badName = try WSRelayProcess.run(["init", "--name", "no spaces"], directory: dir, name: "bad-name")
        #expect(badName.status == 64)
        #expect(badName.stderr.contains("upstream[0].name"), "\(badName.stderr)")
        let badFile = try WSRelayProcess.run(["init", "--file", "relative.jsonl"], directory: dir, name: "bad-file")
        #expect(badFile.status == 64)
        #expect(badFile.stderr.contains("sink[0].path"), "\(badFile.stderr)")
    }
}
