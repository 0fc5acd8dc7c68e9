import Foundation
import NIOCore
import NIOPosix
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

/// A real full disk: a 512 KiB tmpfs (needs root; the tests are skipped otherwise), filled up with a filler file.
final class SinkSmallDisk {
    let path: String
    private let dir: TemporaryDirectory

    init?() throws {
        dir = try TemporaryDirectory("sink-disk")
        path = dir.file("mnt")
        mkdir(path, 0o755)
        guard geteuid() == 0, Self.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", path]) else { return nil }
    }

    /// Writes a file until the disk refuses more; returns its path.
    func fill() -> String {
        let filler = path + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var chunk = [UInt8](repeating: 0x41, count: 4096)
        for _ in 0..<1024 {
            if write(fd, &chunk, chunk.count) <= 0 { break }
        }
        // Take the last partial page too.
        while write(fd, &chunk, 1) == 1 {}
        close(fd)
        return filler
    }

    deinit {
        _ = Self.run(["umount", "-l", path])
    }

    @discardableResult
    static func run(_ arguments: [String]) -> Bool {
        (try? ChildProcess.run(["/usr/bin/env"] + arguments))?.status == 0
    }
}

/// Needs root (to mount a small tmpfs); elsewhere the suite is reported as skipped, never as passed.
@Suite("File sink on a full disk", .mayBlock, .serialized, .enabled(if: geteuid() == 0, "needs root to mount a tmpfs"))
struct SinkDiskFullTests {
    @Test func blockPausesUpstreamsAndLosesNothingOnceSpaceReturns() async throws {
        let disk = try #require(try SinkSmallDisk(), "mounting a 512k tmpfs failed")
        let path = disk.path + "/out.jsonl"
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let sinks = try await SinkTest.open([SinkTest.fileSettings(path) { $0.buffer = 64 * 1024; $0.onFull = .block }], group: group)
        let flow = SinkTestFlowControl()
        sinks.flowControls.register(upstream: "market", flowControl: flow)
        let filler = disk.fill()
        let delivered = try await SinkTest.running(sinks) { () -> UInt64 in
            var next: UInt64 = 1
            // Act as an upstream: read while not paused.
            while !flow.isPaused && next < 20_000 {
                sinks.router.deliver(SinkTest.batch(first: next, count: 50))
                next += 50
                await Task.yield()
            }
            #expect(flow.isPaused)
            // The buffer may fill before the writer's first attempt: wait for that attempt to fail.
            #expect(await waitUntil { sinks.snapshot().first?.failing == true })
            let status = try #require(sinks.snapshot().first)
            #expect(status.pausingUpstreams && status.writeErrors > 0)
            #expect(status.lastError?.contains("ENOSPC") == true)
            // What the upstream had already read when it was paused still arrives.
            sinks.router.deliver(SinkTest.batch(first: next, count: 50))
            next += 50
            #expect(unlink(filler) == 0)
            #expect(await waitUntil { !flow.isPaused })
            while next < 3000 {
                #expect(await waitUntil { !flow.isPaused })
                sinks.router.deliver(SinkTest.batch(first: next, count: 50))
                next += 50
            }
            return next - 1
        }
        let lines = SinkTest.readLines(path)
        #expect(SinkFileTests.checkedSeqs(lines) == countingUp(to: delivered))
        let status = try #require(sinks.snapshot().first)
        #expect(status.dropped == 0 && !status.failing && status.bufferedBytes == 0)
        #expect(flow.state.withLockedValue { $0.pauses } >= 1)
        try await group.shutdownGracefully()
    }

    @Test func dropCountsWhatDidNotFitAndWritesAGapRecord() async throws {
        let disk = try #require(try SinkSmallDisk(), "mounting a 512k tmpfs failed")
        let path = disk.path + "/out.jsonl"
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let sinks = try await SinkTest.open([SinkTest.fileSettings(path) { $0.buffer = 32 * 1024; $0.onFull = .drop }], group: group)
        let flow = SinkTestFlowControl()
        sinks.flowControls.register(upstream: "market", flowControl: flow)
        let filler = disk.fill()
        try await SinkTest.running(sinks) {
            for start in stride(from: 1, through: 1000, by: 10) {
                sinks.router.deliver(SinkTest.batch(first: UInt64(start), count: 10))
            }
            #expect(await waitUntil { sinks.snapshot().first?.failing == true })
            let status = try #require(sinks.snapshot().first)
            #expect(status.dropped > 0)
            #expect(!flow.isPaused, "drop never pauses upstreams")
            #expect(unlink(filler) == 0)
            #expect(await waitUntil { SinkTest.readLines(path).contains { $0.hasPrefix(#"{"event":"gap""#) } })
            sinks.router.deliver(SinkTest.batch(first: 1001, count: 100))
        }
        let lines = SinkTest.readLines(path)
        let seqs = SinkFileTests.checkedSeqs(lines, allowGaps: true)
        let gaps = lines.filter { $0.hasPrefix(#"{"event":"gap""#) }
        try #require(gaps.count == 1, "\(gaps)")
        let gap = try #require(try JSONSerialization.jsonObject(with: Data(gaps[0].utf8)) as? [String: Any])
        let dropped = try #require(gap["dropped"] as? Int)
        let first = try #require(gap["first_seq"] as? Int)
        let last = try #require(gap["last_seq"] as? Int)
        #expect(gap["upstream"] as? String == "market")
        let status = try #require(sinks.snapshot().first)
        #expect(UInt64(dropped) == status.dropped)
        #expect(seqs.count + dropped == 1100)
        // The missing messages are exactly first...last, and the gap record sits where they were.
        let missing = Set(1...1100).subtracting(seqs.map { Int($0) })
        #expect(missing == Set(first...last))
        #expect(seqs == seqs.sorted())
        let gapIndex = try #require(lines.firstIndex { $0.hasPrefix(#"{"event":"gap""#) })
        #expect(SinkTest.seq(of: lines[gapIndex - 1]).map { Int($0) } == first - 1)
        #expect(SinkTest.seq(of: lines[gapIndex + 1]).map { Int($0) } == last + 1)
        try await group.shutdownGracefully()
    }
}
