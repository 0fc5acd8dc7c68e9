import Foundation
import Logging
import NIOCore
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

/// The file writer's coalescing (LineWriter "Coalescing"), on a real file and a real writer thread: after a
/// write, small lines gather until the linger ends; a read's worth of bytes, a reopen or a stop does not wait.
@Suite("file writer linger", .mayBlock, .timeLimit(.minutes(1)))
struct LineWriterLingerTests {
    final class Harness: Sendable {
        let path: String
        let writer: LineWriter
        let running: Task<Void, any Error>

        init(_ dir: TemporaryDirectory, linger: Duration) throws {
            path = dir.file("out")
            let target = FileOutput.Target.path(path, mode: 0o644)
            let output = FileOutput(target: target)
            try output.open()
            var configuration = LineWriter.Configuration(label: "file sink \(path)", target: target, capacity: 8 << 20, onFull: .block)
            configuration.linger = linger
            let directory = UpstreamDirectory(names: ["market"])
            writer = LineWriter(configuration: configuration, output: output, selection: .all, events: false, directory: directory,
                                registry: FlowControlRegistry(directory: directory), forcedExit: ForcedExit(),
                                logger: Logger(label: "linger-test"))
            running = Task { [writer] in try await writer.run(threadName: "linger-test") }
        }

        /// One batch of one line of `bytes` bytes (newline included).
        func enqueue(line number: UInt64, bytes: Int = 16) {
            var buffer = ByteBuffer(string: "\(number) ")
            buffer.writeRepeatingByte(UInt8(ascii: "x"), count: bytes - buffer.readableBytes - 1)
            buffer.writeString("\n")
            writer.enqueue(EncodedBatch(bytes: buffer, entries: [.init(end: UInt32(bytes), upstream: 0, isEvent: false, seq: number)]))
        }

        var counters: LineWriter.Counters { writer.snapshot.counters }

        /// A writer that has just written line 1, so it lingers now.
        static func afterFirstWrite(_ dir: TemporaryDirectory, linger: Duration) throws -> Harness {
            let h = try Harness(dir, linger: linger)
            h.enqueue(line: 1)
            #expect(eventually(timeout: .seconds(10)) { h.counters.writes == 1 })
            return h
        }

        func stop() async throws {
            writer.requestStop(.drain)
            try await running.value
        }
    }

    static func lineCount(_ path: String) -> Int {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    @Test("lines queued while the writer lingers after a write go out together in one write")
    func smallLinesGather() async throws {
        let dir = try TemporaryDirectory()
        let h = try Harness.afterFirstWrite(dir, linger: .seconds(1))
        // Twenty lines 2 ms apart (40 ms, far inside the 1 s linger): without lingering, each would wake the
        // writer and be written on its own.
        for n in 2...21 {
            h.enqueue(line: UInt64(n))
            usleep(2_000)
        }
        #expect(eventually(timeout: .seconds(10)) { h.counters.bytesWritten == 21 * 16 })
        #expect(h.counters.writes == 2, "\(h.counters)")
        try await h.stop()
        #expect(Self.lineCount(h.path) == 21)
    }

    @Test("a read's worth of bytes wakes a lingering writer at once")
    func largeBatchBypasses() async throws {
        let dir = try TemporaryDirectory()
        let h = try Harness.afterFirstWrite(dir, linger: .seconds(30))
        h.enqueue(line: 2, bytes: LineWriter.lingerBypassBytes)
        // Within 10 s although the writer lingers for 30.
        #expect(eventually(timeout: .seconds(10)) { h.counters.bytesWritten == UInt64(16 + LineWriter.lingerBypassBytes) })
        try await h.stop()
    }

    @Test("a graceful stop does not wait for the linger: what is queued is written and the writer ends")
    func stopEndsTheLinger() async throws {
        let dir = try TemporaryDirectory()
        let h = try Harness.afterFirstWrite(dir, linger: .seconds(30))
        h.enqueue(line: 2)
        let started = ContinuousClock.now
        try await h.stop()
        // The suite's 1-minute limit would end a stop that waited for the 30 s linger twice over; this says why.
        #expect(ContinuousClock.now - started < .seconds(25), "the stop waited for the linger")
        #expect(Self.lineCount(h.path) == 2)
    }
}
