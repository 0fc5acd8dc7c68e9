import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// Suspend/resume (issue 14 item 4) through the real binary: a simulated resume makes the daemon ping every
/// open connection at once, seen by the server. The resume is simulated at the clock-reading boundary
/// (`WSRELAY_TEST_BOOTTIME_OFFSET_FILE` adds seconds to CLOCK_BOOTTIME, as a real suspend would), so the
/// detection, the log line and the pings are the production path.
@Suite("suspend and resume (real binary)", .mayBlock, .serialized, .timeLimit(.minutes(1)))
struct SuspendResumeTests {
    @Test("after a simulated resume every connection is pinged at once, not at its next ping slot")
    func resumePingsEveryConnection() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let offsetFile = try dir.write("boottime-offset", "0")
        let upstreams = ["a", "b"].map { name in
            """
            [[upstream]]
            name = "\(name)"
            url = "\(server.url)/\(name)"
            ping_interval = "10m"

            """
        }.joined()
        let config = """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"

            \(upstreams)
            """
        let daemon = try RunningDaemon(config: config, in: dir,
                                       environment: ["WSRELAY_TEST_BOOTTIME_OFFSET_FILE": offsetFile])
        defer { daemon.stop() }
        #expect(eventually { server.recorder.acceptedConnections.count == 2 })
        #expect(eventually { ControlSocket.status(dir)?.upstreams.allSatisfy { $0.state == "open" } == true })
        // With a 10-minute interval no ping is due during this test: any ping is the resume's.
        #expect(server.recorder.acceptedConnections.allSatisfy { $0.pings.isEmpty })

        // The machine "slept" two minutes (written whole: a half-written file must not be read as 12 s).
        _ = try dir.write("boottime-offset.new", "120")
        try #require(rename(dir.file("boottime-offset.new"), offsetFile) == 0)
        #expect(eventually { server.recorder.acceptedConnections.allSatisfy { $0.pings.count == 1 } },
                "\(server.recorder.acceptedConnections.map(\.pings.count))\n\(daemon.log)")
        #expect(daemon.log.contains("resumed after about 2m"), "\(daemon.log)")
        #expect(!daemon.log.contains("wall clock was stepped"), "a resume is not a wall-clock step: \(daemon.log)")
        // The pongs came back: the connections are alive and stay open.
        #expect(eventually { ControlSocket.status(dir)?.upstreams.allSatisfy { $0.pongRttMs != nil } == true }, "\(daemon.log)")
        #expect(server.recorder.acceptedConnections.count == 2, "\(daemon.log)")
    }
}
