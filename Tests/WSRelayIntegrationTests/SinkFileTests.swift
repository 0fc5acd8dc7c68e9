import Foundation
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

@Suite("File sink (real files)", .mayBlock, .serialized)
struct SinkFileTests {
    /// Every line is a whole envelope line of upstream `market`; returns the seqs in file order.
    static func checkedSeqs(_ lines: [Substring], allowGaps: Bool = false) -> [UInt64] {
        var seqs: [UInt64] = []
        for line in lines {
            if allowGaps && line.hasPrefix(#"{"event":"gap""#) { continue }
            #expect(line.hasPrefix(#"{"upstream":"market","epoch":1,"seq":"#) && line.hasSuffix("\"}"), "torn or foreign line: \(line.prefix(120))")
            if let seq = SinkTest.seq(of: line) { seqs.append(seq) }
        }
        return seqs
    }

    @Test func floodOf100kMessagesArrivesWholeAndInOrder() async throws {
        let dir = try TemporaryDirectory("sink-file")
        let path = dir.file("out.jsonl")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let sinks = try await SinkTest.open([SinkTest.fileSettings(path)], group: group)
        try await SinkTest.running(sinks) {
            // Deliver from the event loops, as upstream connections do.
            for start in stride(from: 1, through: 100_000, by: 1000) {
                try await group.next().submit { sinks.router.deliver(SinkTest.batch(first: UInt64(start), count: 1000)) }.get()
            }
        }
        let lines = SinkTest.readLines(path)
        #expect(lines.count == 100_000)
        let seqs = Self.checkedSeqs(lines)
        #expect(seqs == Array(1...100_000))
        for line in lines where SinkTest.seq(of: line)! % 997 == 0 {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["type"] as? String == "text")
        }
        let status = try #require(sinks.snapshot().first)
        #expect(status.kind == .file && status.bytesWritten == UInt64(SinkTest.fileSize(path)) && status.dropped == 0)
        #expect(status.bufferedBytes == 0 && status.writeErrors == 0)
        try await group.shutdownGracefully()
    }

    @Test func renamedMidFloodThenReopenedKeepsEveryMessageExactlyOnce() async throws {
        let dir = try TemporaryDirectory("sink-file")
        let path = dir.file("out.jsonl")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let sinks = try await SinkTest.open([SinkTest.fileSettings(path)], group: group)
        try await SinkTest.running(sinks) {
            for start in stride(from: 1, through: 60_000, by: 500) {
                sinks.router.deliver(SinkTest.batch(first: UInt64(start), count: 500))
                if start == 30_001 {
                    // Rename only once the writer has put lines into the file, so the rename is mid-flood.
                    #expect(eventually { !SinkTest.readLines(path).isEmpty })
                    #expect(rename(path, path + ".old") == 0)
                    sinks.reopenFiles()
                }
            }
        }
        let old = Self.checkedSeqs(SinkTest.readLines(path + ".old"))
        let new = Self.checkedSeqs(SinkTest.readLines(path))
        #expect(!old.isEmpty && !new.isEmpty)
        #expect(old + new == Array(1...60_000))
        try await group.shutdownGracefully()
    }

    @Test func deletedFileIsNoticedWithoutReopenAndCreatedAnew() async throws {
        let dir = try TemporaryDirectory("sink-file")
        let path = dir.file("out.jsonl")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let sinks = try await SinkTest.open([SinkTest.fileSettings(path) { $0.mode = 0o600 }], group: group)
        try await SinkTest.running(sinks) {
            sinks.router.deliver(SinkTest.batch(first: 1, count: 100))
            #expect(await waitUntil { SinkTest.readLines(path).count == 100 })
            #expect(unlink(path) == 0)
            // The writer checks the path at least once a second, idle or not.
            #expect(await waitUntil(timeout: .seconds(5)) { SinkTest.fileSize(path) >= 0 })
            sinks.router.deliver(SinkTest.batch(first: 101, count: 100))
        }
        #expect(Self.checkedSeqs(SinkTest.readLines(path)) == Array(101...200))
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        try await group.shutdownGracefully()
    }

    @Test func aFailedReopenKeepsTheDataAndRetriesUntilThePathWorksAgain() async throws {
        let dir = try TemporaryDirectory("sink-file")
        let sub = dir.file("logs")
        mkdir(sub, 0o755)
        let path = sub + "/out.jsonl"
        let moved = dir.file("logs.old")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let sinks = try await SinkTest.open([SinkTest.fileSettings(path)], group: group)
        try await SinkTest.running(sinks) {
            sinks.router.deliver(SinkTest.batch(first: 1, count: 10))
            #expect(await waitUntil { SinkTest.readLines(path).count == 10 })
            // The whole directory goes away: the path cannot be opened again for now.
            #expect(rename(sub, moved) == 0)
            #expect(await waitUntil(timeout: .seconds(5)) { sinks.snapshot().first?.failing == true })
            sinks.router.deliver(SinkTest.batch(first: 11, count: 10))
            #expect(sinks.snapshot().first?.lastError?.contains("ENOENT") == true)
            #expect(sinks.snapshot().first?.bufferedBytes ?? 0 > 0)
            mkdir(sub, 0o755)
            #expect(await waitUntil(timeout: .seconds(10)) { SinkTest.readLines(path).count == 10 })
        }
        #expect(Self.checkedSeqs(SinkTest.readLines(moved + "/out.jsonl")) == Array(1...10))
        #expect(Self.checkedSeqs(SinkTest.readLines(path)) == Array(11...20))
        try await group.shutdownGracefully()
    }

    @Test func newFilesGetExactlyTheConfiguredMode() async throws {
        let dir = try TemporaryDirectory("sink-file")
        let path = dir.file("out.jsonl")
        let previous = umask(0o077)
        defer { umask(previous) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let sinks = try await SinkTest.open([SinkTest.fileSettings(path) { $0.mode = 0o644 }], group: group)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o644)
        try await SinkTest.running(sinks) {}
        try await group.shutdownGracefully()
    }

    @Test func builtInRotationKeepsEveryLineAcrossFiles() async throws {
        let dir = try TemporaryDirectory("sink-file")
        let path = dir.file("out.jsonl")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let sinks = try await SinkTest.open([SinkTest.fileSettings(path) { $0.rotateSize = 20_000; $0.rotateKeep = 100 }], group: group)
        try await SinkTest.running(sinks) {
            for start in stride(from: 1, through: 3000, by: 50) {
                sinks.router.deliver(SinkTest.batch(first: UInt64(start), count: 50))
            }
        }
        var files: [String] = []
        var index = 1
        while FileManager.default.fileExists(atPath: "\(path).\(index)") { files.insert("\(path).\(index)", at: 0); index += 1 }
        files.append(path)
        #expect(files.count >= 10)
        var seqs: [UInt64] = []
        for file in files {
            seqs += Self.checkedSeqs(SinkTest.readLines(file))
            if file != path { #expect(SinkTest.fileSize(file) < 20_000 + 50 * 200, "\(file) is \(SinkTest.fileSize(file)) bytes") }
        }
        #expect(seqs == Array(1...3000))
        try await group.shutdownGracefully()
    }

    @Test func rotationKeepsOnlyRotateKeepOldFiles() async throws {
        let dir = try TemporaryDirectory("sink-file")
        let path = dir.file("out.jsonl")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let sinks = try await SinkTest.open([SinkTest.fileSettings(path) { $0.rotateSize = 5_000; $0.rotateKeep = 2 }], group: group)
        try await SinkTest.running(sinks) {
            for start in stride(from: 1, through: 1000, by: 20) {
                sinks.router.deliver(SinkTest.batch(first: UInt64(start), count: 20))
            }
        }
        #expect(FileManager.default.fileExists(atPath: path + ".1"))
        #expect(FileManager.default.fileExists(atPath: path + ".2"))
        #expect(!FileManager.default.fileExists(atPath: path + ".3"))
        let newest = Self.checkedSeqs(SinkTest.readLines(path))
        #expect(newest.last == 1000)
        try await group.shutdownGracefully()
    }

    @Test func gracefulShutdownDrainsEverythingQueued() async throws {
        let dir = try TemporaryDirectory("sink-file")
        let path = dir.file("out.jsonl")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let sinks = try await SinkTest.open([SinkTest.fileSettings(path) { $0.fsync = .always }], group: group)
        try await SinkTest.running(sinks) {
            for start in stride(from: 1, through: 20_000, by: 2000) {
                sinks.router.deliver(SinkTest.batch(first: UInt64(start), count: 2000))
            }
            // No waiting: shutdown starts right away and must still write all of it.
        }
        #expect(Self.checkedSeqs(SinkTest.readLines(path)) == Array(1...20_000))
        try await group.shutdownGracefully()
    }

    @Test func rawFormatWithEventsAndUpstreamFilter() async throws {
        let dir = try TemporaryDirectory("sink-file")
        let path = dir.file("raw.txt")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let sinks = try await SinkTest.open([SinkTest.fileSettings(path, format: .raw, upstreams: ["news"], events: true)],
                                            upstreams: ["market", "news"], group: group)
        let t = WallClockTime(microsecondsSinceEpoch: 1_795_255_200_000_000)
        try await SinkTest.running(sinks) {
            sinks.router.deliver([
                .connected(upstream: "news", epoch: 4, at: t),
                .message(ReceivedMessage(upstream: "market", epoch: 1, seq: 1, receivedAt: t, kind: .text, payload: ByteBuffer(string: "m"))),
                .message(ReceivedMessage(upstream: "news", epoch: 4, seq: 1, receivedAt: t, kind: .text, payload: ByteBuffer(string: "hello"))),
                .message(ReceivedMessage(upstream: "news", epoch: 4, seq: 2, receivedAt: t, kind: .binary, payload: ByteBuffer(bytes: [1, 2, 3]))),
                .disconnected(upstream: "news", epoch: 4, code: 1001, reason: "bye", at: t),
            ])
        }
        #expect(SinkTest.readLines(path) == [
            #"{"event":"connected","upstream":"news","epoch":4,"ts":"2026-11-21T10:00:00.000000Z"}"#,
            "hello",
            "AQID",
            #"{"event":"disconnected","upstream":"news","epoch":4,"code":1001,"reason":"bye","ts":"2026-11-21T10:00:00.000000Z"}"#,
        ])
        try await group.shutdownGracefully()
    }

    @Test func startupErrorNamesThePathAndTheCause() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        await #expect {
            _ = try await SinkTest.open([SinkTest.fileSettings("/nonexistent-dir/out.jsonl")], group: group)
        } throws: { error in
            "\(error)" == "file sink /nonexistent-dir/out.jsonl: cannot open: No such file or directory (ENOENT)"
        }
        try await group.shutdownGracefully()
    }

    @Test func stdoutSinkUsesTheSameWriter() async throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let directory = UpstreamDirectory(names: ["market"])
        let sink = FileSink(stdout: SinkSettings(kind: .stdout), descriptor: fds[1], directory: directory,
                            registry: FlowControlRegistry(directory: directory), forcedExit: ForcedExit(), logger: SinkTest.logger)
        let router = MessageRouter(directory: directory, lineSinks: [sink], eventSinks: [])
        let readFD = fds[0]
        let reader = Task.detached { () -> String in
            var data = [UInt8]()
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(readFD, &chunk, chunk.count)
                if n <= 0 { break }
                data += chunk[0..<n]
                if data.filter({ $0 == 0x0A }).count >= 10 { break }
            }
            return String(decoding: data, as: UTF8.self)
        }
        let group2 = SinkServiceRunner(services: [sink])
        router.deliver(SinkTest.batch(first: 1, count: 10))
        let text = await reader.value
        await group2.stop()
        close(fds[0]); close(fds[1])
        #expect(Self.checkedSeqs(text.split(separator: "\n")) == Array(1...10))
        try await group.shutdownGracefully()
    }
}
