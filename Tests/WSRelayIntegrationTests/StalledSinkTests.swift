import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// Issue 16's defect through the real binary: a file sink on a FIFO whose reader never reads must neither
/// stall the other file sinks nor make the second SIGTERM wait (writers once shared one process-wide lock
/// held across a blocking `writev`).
@Suite("a stalled sink", .mayBlock, .serialized, .timeLimit(.minutes(2)))
struct StalledSinkTests {
    @Test("a FIFO nobody reads: the file sink beside it keeps receiving; a second SIGTERM exits at once")
    func fifoNobodyReadsStallsNothing() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let fifo = dir.file("stalled.fifo")
        let out = dir.file("out.jsonl")
        try #require(mkfifo(fifo, 0o600) == 0)
        let readEnd = open(fifo, O_RDONLY | O_NONBLOCK)  // opened, never read: the pipe fills and stays full
        try #require(readEnd >= 0)
        defer { close(readEnd) }
        // The FIFO sink drops (it must not pause the upstream: that is back-pressure, not a stall);
        // shutdown_timeout 60 s: the graceful drain into the FIFO can never finish, only a forced exit ends it.
        let daemon = try RunningDaemon(config: """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"
            shutdown_timeout = "60s"

            [[upstream]]
            name = "flood"
            url = "\(server.url)/flood?count=50000000&size=100&rate=4000"

            [[sink]]
            type = "file"
            path = "\(fifo)"
            buffer = "64KiB"
            on_full = "drop"
            fsync = "never"

            [[sink]]
            type = "file"
            path = "\(out)"
            fsync = "never"
            """, in: dir)

        // The FIFO's pipe and then its 64 KiB buffer are full: it is dropping.
        let fifoSink = { ControlSocket.status(dir)?.sinks.first { $0.name == fifo } }
        #expect(eventually { (fifoSink()?.dropped ?? 0) > 1000 }, "\(String(describing: fifoSink()))")
        // From then on the regular file keeps growing by thousands of messages.
        let before = EnvelopeLine.parse(file: out).count
        #expect(eventually { EnvelopeLine.parse(file: out).count >= before + 4000 },
                "the file sink stalled at \(EnvelopeLine.parse(file: out).count) lines (had \(before))")

        daemon.process.signal(SIGTERM)
        let stopping = daemon.notify.receive(until: { $0.notifyFields["STOPPING"] == "1" })
        #expect(stopping.last?.notifyFields["STOPPING"] == "1")
        #expect(processIsAlive(daemon.process.pid), "the drain into the FIFO cannot finish: still shutting down")
        daemon.process.signal(SIGTERM)
        // Forced exit: status 1, long before the 60 s shutdown_timeout (the 20 s is only a safety net).
        #expect(daemon.process.waitForExit(timeout: .seconds(20)) == 1, "\(daemon.log)")
        #expect(daemon.log.contains("exiting at once"))
        let text = try String(contentsOfFile: out, encoding: .utf8)
        #expect(text.hasSuffix("\n"), "torn last line")
        let lines = EnvelopeLine.parse(file: out)
        #expect(lines.count == text.split(separator: "\n").count, "a line that is not valid JSON")
        #expect(lines.map(\.seq) == countingUp(to: lines.count).map { Optional($0) })
    }
}
