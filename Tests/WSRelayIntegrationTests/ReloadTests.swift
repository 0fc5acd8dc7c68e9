import Foundation
import NIOPosix
import Testing
import WSRelayCore
import WSRelaySimulator
import WSRelayTestSupport

/// Reload as a diff through the real binary: what did not change keeps its connection, epoch and seq.
@Suite("reload as a diff", .mayBlock, .serialized, .timeLimit(.minutes(2)))
struct ReloadTests {
    static func config(_ dir: TemporaryDirectory, upstreams: [String], extraSinks: String = "") -> String {
        """
        [daemon]
        state_dir = "\(dir.path)"
        control_socket = "\(dir.file("control.sock"))"

        \(upstreams.joined(separator: "\n"))

        [[sink]]
        type = "file"
        path = "\(dir.file("out.jsonl"))"
        fsync = "never"
        \(extraSinks)
        """
    }

    static func upstream(_ name: String, _ url: String, _ extra: String = "") -> String {
        """
        [[upstream]]
        name = "\(name)"
        url = "\(url)"
        \(extra)
        [upstream.reconnect]
        initial = "200ms"

        """
    }

    static func lines(_ dir: TemporaryDirectory, _ name: String) -> [EnvelopeLine] {
        EnvelopeLine.parse(file: dir.file("out.jsonl")).filter { $0.upstream == name && $0.type != nil }
    }

    @Test("a reload that changes one upstream keeps the others' connections, epochs and seq; removed close 1000; added connect")
    func reloadKeepsUnchangedUpstreams() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let stream = "count=100000&rate=100&size=80"
        let a = Self.upstream("a", "\(server.url)/a?\(stream)")
        let d = Self.upstream("d", "\(server.url)/d")
        let daemon = try RunningDaemon(config: Self.config(dir, upstreams: [
            a, Self.upstream("b", "\(server.url)/b?\(stream)"), d,
        ]), in: dir)
        defer { daemon.stop() }
        #expect(eventually {
            let report = ControlSocket.status(dir)
            return report?.upstreams.allSatisfy { $0.state == "open" } == true
                && Self.lines(dir, "a").count >= 10 && Self.lines(dir, "b").count >= 10
        })
        let before = try #require(ControlSocket.status(dir))
        let epoch = { (name: String, report: StatusReport) in report.upstreams.first { $0.name == name }?.epoch }

        // b changes (a header), c is added with a raw file sink of its own, d is removed, a stays as it was.
        _ = try dir.write("wsrelay.toml", Self.config(dir, upstreams: [
            a, Self.upstream("b", "\(server.url)/b?\(stream)", "headers = { X-Reloaded = \"1\" }"),
            Self.upstream("c", "\(server.url)/c?\(stream)"),
        ], extraSinks: """

            [[sink]]
            type = "file"
            path = "\(dir.file("c.raw"))"
            format = "raw"
            upstreams = ["c"]
            """))
        let reload = try daemon.command(["reload"])
        #expect(reload.status == 0, "\(reload.stdout)\(reload.stderr)")
        #expect(reload.stdout.contains("+c") && reload.stdout.contains("-d") && reload.stdout.contains("~b"), "\(reload.stdout)")

        let aCountAtReload = Self.lines(dir, "a").count
        let bCountAtReload = Self.lines(dir, "b").count
        #expect(eventually {
            let report = ControlSocket.status(dir)
            return report?.upstreams.map(\.name) == ["a", "b", "c"]
                && report?.upstreams.allSatisfy { $0.state == "open" } == true
                && Self.lines(dir, "a").count >= aCountAtReload + 10 && Self.lines(dir, "b").count >= bCountAtReload + 10
                && ((try? String(contentsOfFile: dir.file("c.raw"), encoding: .utf8))?.split(separator: "\n").count ?? 0) >= 5
        }, "\(String(describing: ControlSocket.status(dir)?.upstreams.map { "\($0.name) \($0.state)" }))")
        let after = try #require(ControlSocket.status(dir))
        #expect(epoch("a", after) == epoch("a", before))
        #expect((epoch("b", after) ?? 0) > (epoch("b", before) ?? 0))

        let connections = server.recorder.connections
        #expect(connections.filter { $0.path.hasPrefix("/a") }.count == 1)
        #expect(connections.first { $0.path.hasPrefix("/a") }?.closed == false)
        #expect(connections.first { $0.path.hasPrefix("/d") }?.closeCodeReceived == 1000)
        #expect(connections.first { $0.path.hasPrefix("/b") }?.closeCodeReceived == 1000)
        #expect(connections.last { $0.path.hasPrefix("/b") }?.header("X-Reloaded") == "1")

        // A config with an error changes nothing.
        _ = try dir.write("wsrelay.toml", Self.config(dir, upstreams: [
            Self.upstream("a", "\(server.url)/a?\(stream)", "ping_interval = \"banana\""),
        ]))
        let rejected = try daemon.command(["reload"], name: "rejected")
        #expect(rejected.status == 1)
        #expect(rejected.stderr.contains("upstream[0].ping_interval"), "\(rejected.stderr)")
        let unchanged = try #require(ControlSocket.status(dir))
        #expect(unchanged.upstreams.map(\.name) == ["a", "b", "c"])
        #expect(epoch("a", unchanged) == epoch("a", before) && epoch("b", unchanged) == epoch("b", after))

        #expect(daemon.stop() == 0)
        for name in ["a", "b", "c"] {
            let seqs = Self.lines(dir, name).compactMap(\.seq)
            #expect(!seqs.isEmpty && seqs == countingUp(to: seqs.count), "\(name): seq not continuous")
        }
        #expect(Set(Self.lines(dir, "a").compactMap(\.epoch)).count == 1)
        #expect(Set(Self.lines(dir, "b").compactMap(\.epoch)).count == 2)
    }
}
