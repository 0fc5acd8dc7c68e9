import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// The simulator's pacing options for the benchmark with many busy connections (`bench/wsbench/latency.py`):
/// `tick=MS` paces in coarser ticks, `spread=1` starts each connection at a random phase. Checked through the
/// real daemon: every paced connection still delivers all its messages, in order.
@Suite("simulator pacing for benchmarks", .mayBlock, .serialized, .timeLimit(.minutes(1)))
struct SimulatorPacingTests {
    @Test("tick= and spread= are read from the query; 20 connections paced in 10 ms ticks from random phases deliver every message in order")
    func coarseTicksFromRandomPhases() async throws {
        let paced = SimulatorScenario(query: "count=10&size=100&rate=200&tick=10&spread=1")
        #expect(paced.tickMilliseconds == 10 && paced.spread && paced.rate == 200)
        #expect(SimulatorScenario(query: "rate=200").tickMilliseconds == 1, "default: 1 ms ticks as before")
        #expect(!SimulatorScenario(query: "rate=200").spread)
        #expect(SimulatorScenario(query: "rate=200&tick=0").tickMilliseconds == 1, "a tick is at least 1 ms")

        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let names = (0..<20).map { "paced-\($0)" }
        let daemon = try RunningDaemon(config: UpstreamTests.config(dir, upstreams: names.map {
            UpstreamTests.upstream($0, "\(server.url)/p?count=10&size=100&rate=200&tick=10&spread=1")
        }.joined()), in: dir)
        #expect(eventually { UpstreamTests.messages(dir).count == 200 }, "got \(UpstreamTests.messages(dir).count)")
        #expect(daemon.stop() == 0)
        let lines = UpstreamTests.messages(dir)
        for name in names {
            #expect(lines.filter { $0.upstream == name }.map(\.seq) == Array(1...10).map { Optional($0) }, "\(name)")
        }
    }
}
