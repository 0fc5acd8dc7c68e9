import Foundation
import NIOPosix
import Testing
import WSRelayCore
import WSRelaySimulator
import WSRelayTestSupport

/// Issue 13, item 3 through the real binary (the in-process `SinkDiskFullTests` prove the sink alone): a file
/// sink on a 512 KiB tmpfs that the test fills up while a flood arrives. `block` pauses the upstream and
/// loses nothing once space returns; `drop` writes one gap record whose count is what the daemon dropped.
@Suite("disk full through the daemon", .mayBlock, .serialized, .timeLimit(.minutes(2)),
       .enabled(if: geteuid() == 0, "needs root to mount a tmpfs"))
struct DiskFullDaemonTests {
    static func config(_ dir: TemporaryDirectory, server: SimulatorServer, path: String, onFull: String) -> String {
        """
        [daemon]
        state_dir = "\(dir.path)"
        control_socket = "\(dir.file("control.sock"))"

        [[upstream]]
        name = "flood"
        url = "\(server.url)/flood?count=100000000&size=100&rate=300"

        [[sink]]
        type = "file"
        path = "\(path)"
        buffer = "64KiB"
        on_full = "\(onFull)"
        fsync = "never"
        """
    }

    static func sink(_ dir: TemporaryDirectory) -> StatusReport.Sink? { ControlSocket.status(dir)?.sinks.first }

    @Test("block: the upstream pauses while the disk is full; once space returns every message arrives, in order")
    func blockLosesNothing() async throws {
        let disk = try #require(try SinkSmallDisk(), "mounting a 512k tmpfs failed")
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let out = disk.path + "/out.jsonl"
        let daemon = try RunningDaemon(config: Self.config(dir, server: server, path: out, onFull: "block"), in: dir)
        #expect(eventually { EnvelopeLine.parse(file: out).count > 200 })
        let filler = disk.fill()
        #expect(eventually { Self.sink(dir)?.failing == true && Self.sink(dir)?.pausingUpstreams == true }, "\(String(describing: Self.sink(dir)))")
        #expect(Self.sink(dir)?.lastError?.contains("ENOSPC") == true)
        #expect(unlink(filler) == 0)
        #expect(eventually { Self.sink(dir)?.failing == false })
        let counted = ControlSocket.upstream("flood", in: dir)?.messages ?? 0
        #expect(eventually { UInt64(EnvelopeLine.parse(file: out).count) > counted + 200 })
        #expect(daemon.stop() == 0, "\(daemon.log)")
        #expect(daemon.log.contains("writing again"))
        let text = try String(contentsOfFile: out, encoding: .utf8)
        #expect(text.hasSuffix("\n"))
        let lines = EnvelopeLine.parse(file: out)
        #expect(lines.count == text.split(separator: "\n").count, "a line that is not whole JSON")
        #expect(lines.map(\.seq) == (1..<(lines.count + 1)).map { Optional($0) }, "a message was lost")
        #expect(lines.count == server.recorder.connections.first?.messagesSent, "everything the server sent is in the file")
    }

    @Test("drop: one gap record naming exactly the messages the daemon dropped")
    func dropWritesAGapRecord() async throws {
        let disk = try #require(try SinkSmallDisk(), "mounting a 512k tmpfs failed")
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let out = disk.path + "/out.jsonl"
        let daemon = try RunningDaemon(config: Self.config(dir, server: server, path: out, onFull: "drop"), in: dir)
        #expect(eventually { EnvelopeLine.parse(file: out).count > 200 })
        let filler = disk.fill()
        #expect(eventually { (Self.sink(dir)?.dropped ?? 0) > 500 }, "\(String(describing: Self.sink(dir)))")
        #expect(unlink(filler) == 0)
        #expect(eventually { EnvelopeLine.parse(file: out).contains { $0.event == "gap" } })
        let dropped = try #require(Self.sink(dir)?.dropped)
        #expect(daemon.stop() == 0, "\(daemon.log)")
        let lines = EnvelopeLine.parse(file: out)
        let gaps = lines.filter { $0.event == "gap" }
        #expect(gaps.count == 1)
        let gap = try #require(gaps.first?.object)
        let count = try #require((gap["dropped"] as? NSNumber)?.intValue)
        let first = try #require((gap["first_seq"] as? NSNumber)?.intValue)
        let last = try #require((gap["last_seq"] as? NSNumber)?.intValue)
        #expect(UInt64(count) == dropped)
        let seqs = lines.compactMap(\.seq)
        #expect(Set(1...(seqs.max() ?? 0)).subtracting(seqs) == Set(first...last), "the missing messages are exactly the gap's range")
        #expect(seqs == seqs.sorted())
        #expect(seqs.count + count == server.recorder.connections.first?.messagesSent)
    }
}
