import Foundation
import NIOPosix
import Testing
import WSRelayCore
import WSRelaySimulator
import WSRelayTestSupport

/// `on_full = "block"` through the real binary: a file sink whose "disk" (a FIFO nobody reads yet) is full
/// must stop the daemon reading its upstream, so the flood stays in the server and the kernel's socket
/// buffers instead of the daemon's memory; once the reader drains, every message arrives in order.
@Suite("back-pressure", .mayBlock, .serialized, .timeLimit(.minutes(2)))
struct BackPressureTests {
    @Test("a full file sink pauses its upstream; nothing is lost when the reader catches up")
    func blockPausesUpstream() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let fifo = dir.file("out.fifo")
        try #require(mkfifo(fifo, 0o600) == 0)
        let readEnd = open(fifo, O_RDONLY | O_NONBLOCK)  // lets the daemon open the write end without blocking
        try #require(readEnd >= 0)
        defer { close(readEnd) }
        let count = 50_000, size = 1000  // 50 MB: more than loopback socket buffers can hide
        let daemon = try RunningDaemon(config: """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"

            [[upstream]]
            name = "flood"
            url = "\(server.url)/feed?count=\(count)&size=\(size)"

            [[sink]]
            type = "file"
            path = "\(fifo)"
            format = "raw"
            buffer = "64KiB"
            on_full = "block"
            fsync = "never"
            """, in: dir)
        defer { daemon.stop() }

        // Wait for the steady state: the sink says it is pausing and the server has stopped getting its
        // messages out (two samples a quarter second apart agree). Paused means paused: at that point the
        // sink holds about its buffer plus one read burst, not the flood, and the server still has messages.
        var sink: StatusReport.Sink?
        var sent = -1
        let settleDeadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < settleDeadline {
            let before = server.recorder.totalSent
            usleep(250_000)
            sink = ControlSocket.status(dir)?.sinks.first
            sent = server.recorder.totalSent
            if sink?.pausingUpstreams == true && sent == before { break }
        }
        #expect(sink?.pausingUpstreams == true)
        #expect((sink?.bufferedBytes ?? .max) < 1 << 20, "\(String(describing: sink))")
        #expect(sent < count, "the server could send everything: nothing held it back")

        // Now drain the FIFO: every message arrives, in order.
        _ = fcntl(readEnd, F_SETFL, 0)
        var lines = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let deadline = ContinuousClock.now + .seconds(60)
        while lines < count && ContinuousClock.now < deadline {
            let n = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            lines += buffer[..<n].reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
        }
        #expect(lines == count)
        #expect(ControlSocket.upstream("flood", in: dir)?.messages == UInt64(count))
    }
}
