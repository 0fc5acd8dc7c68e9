import Foundation
import NIOCore
import NIOPosix
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

@Suite("Unix socket sink (real sockets)", .mayBlock, .serialized)
struct SinkUnixSocketTests {
    /// Delivers `total` messages in batches, pacing like a real upstream would: never more than `ahead` bytes
    /// queued for any subscriber that reads.
    /// Delivers `total` messages in batches, each after `pace` (called with the number delivered so far;
    /// default: no subscriber queue above `ahead`) holds. Stops early, returning false, when a pace is not reached within its safety deadline, so a
    /// stuck subscriber fails the test once instead of waiting out every remaining batch.
    @discardableResult
    static func feed(_ sinks: SinkSet, from first: UInt64 = 1, total: Int, batch: Int = 1000, pad: Int = 0,
                     ahead: Int = 2 * 1024 * 1024, pace: ((Int) -> Bool)? = nil) async -> Bool {
        var next = first
        let end = first + UInt64(total)
        while next < end {
            let count = Int(min(UInt64(batch), end - next))
            sinks.router.deliver(SinkTest.batch(first: next, count: count, pad: pad))
            next += UInt64(count)
            let paced = await waitUntil(timeout: .seconds(30)) {
                if let pace { return pace(Int(next - first)) }
                return (sinks.snapshot().first { $0.kind == .unix }?.subscribers.map(\.queuedBytes).max() ?? 0) < ahead
            }
            guard paced else {
                Issue.record("feeding stopped at seq \(next - 1): the pace was not reached within 30 s")
                return false
            }
        }
        return true
    }

    static func waitForSubscribers(_ sinks: SinkSet, _ n: Int) async -> Bool {
        await waitUntil { sinks.snapshot().first { $0.kind == .unix }?.subscribers.count == n }
    }

    @Test func fiftySubscribersAndAFileEachReceiveAll100kInOrder() async throws {
        let dir = try TemporaryDirectory("sink-unix")
        let socket = dir.file("s.sock")
        let file = dir.file("out.jsonl")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let sinks = try await SinkTest.open([SinkTest.unixSettings(socket), SinkTest.fileSettings(file)], group: group)
        try await SinkTest.running(sinks) {
            var subscribers: [SinkTestSubscriber] = []
            for _ in 0..<50 { subscribers.append(try await SinkTestSubscriber.connect(socket, group: clients)) }
            #expect(await Self.waitForSubscribers(sinks, 50))
            await Self.feed(sinks, total: 100_000)
            #expect(await waitUntil(timeout: .seconds(60)) { subscribers.allSatisfy { $0.messages == 100_000 } })
            for s in subscribers {
                #expect(s.messages == 100_000 && s.outOfOrder == 0 && s.otherLines.isEmpty)
            }
            let status = try #require(sinks.snapshot().first)
            #expect(status.subscribers.count == 50 && status.dropped == 0 && status.slowDisconnects == 0)
            #expect(status.subscribers.allSatisfy { $0.pid == getpid() && $0.uid == geteuid() })
            for s in subscribers { await s.close() }
        }
        #expect(SinkFileTests.checkedSeqs(SinkTest.readLines(file)) == Array(1...100_000))
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket file is removed at shutdown")
        try await clients.shutdownGracefully()
        try await group.shutdownGracefully()
    }

    @Test func aSubscriberThatStopsReadingIsDisconnectedAndNobodyElseNotices() async throws {
        let dir = try TemporaryDirectory("sink-unix")
        let socket = dir.file("s.sock")
        let file = dir.file("out.jsonl")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let unix = SinkTest.unixSettings(socket) { $0.queue = 256 * 1024 }
        let sinks = try await SinkTest.open([unix, SinkTest.fileSettings(file)], group: group)
        let flow = SinkTestFlowControl()
        sinks.flowControls.register(upstream: "market", flowControl: flow)
        try await SinkTest.running(sinks) {
            let good = [try await SinkTestSubscriber.connect(socket, group: clients), try await SinkTestSubscriber.connect(socket, group: clients)]
            let slow = try await SinkTestSubscriber.connect(socket, group: clients)
            #expect(await Self.waitForSubscribers(sinks, 3))
            try await slow.setReading(false)
            // The next batch goes out once the good subscribers have everything but the last one: at most
            // 1,000 messages (about 220 KB) are on their way, which the socket buffer (about 208 KiB) and a
            // little of the 256 KiB queue hold, however slowly they are scheduled; the slow one fills its
            // queue and is disconnected.
            await Self.feed(sinks, total: 30_000, batch: 500, pad: 100) { sent in
                good.allSatisfy { $0.messages >= sent - 500 }
            }
            #expect(await waitUntil { good.allSatisfy { $0.messages == 30_000 } })
            #expect(good.allSatisfy { $0.outOfOrder == 0 })
            let status = try #require(sinks.snapshot().first)
            #expect(status.slowDisconnects == 1)
            #expect(status.subscribers.count == 2)
            #expect(!flow.isPaused && flow.state.withLockedValue { $0.pauses } == 0, "subscribers never pause upstreams")
            #expect(slow.messages < 30_000)
        }
        #expect(SinkFileTests.checkedSeqs(SinkTest.readLines(file)) == Array(1...30_000))
        try await clients.shutdownGracefully()
        try await group.shutdownGracefully()
    }

    @Test func underDropASlowSubscriberGetsAGapRecordWhenItCatchesUp() async throws {
        let dir = try TemporaryDirectory("sink-unix")
        let socket = dir.file("s.sock")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let unix = SinkTest.unixSettings(socket) { $0.queue = 256 * 1024; $0.slowConsumer = .drop }
        let sinks = try await SinkTest.open([unix], group: group)
        try await SinkTest.running(sinks) {
            let good = try await SinkTestSubscriber.connect(socket, group: clients)
            let slow = try await SinkTestSubscriber.connect(socket, group: clients, keepSeqs: true)
            #expect(await Self.waitForSubscribers(sinks, 2))
            try await slow.setReading(false)
            await Self.feed(sinks, total: 30_000, batch: 500, pad: 100) { sent in
                good.messages >= sent - 500  // within its 256 KiB queue, as above
            }
            let dropped = try #require(sinks.snapshot().first?.subscribers.map(\.dropped).max())
            #expect(dropped > 0)
            try await slow.setReading(true)
            #expect(await waitUntil { slow.otherLines.contains { $0.hasPrefix(#"{"event":"gap""#) } })
            await Self.feed(sinks, from: 30_001, total: 100, batch: 100)
            #expect(await waitUntil { good.messages == 30_100 && slow.seqs.last == 30_100 })
            #expect(good.outOfOrder == 0 && !slow.closed)
            let gaps = slow.otherLines.filter { $0.hasPrefix(#"{"event":"gap""#) }
            var reported = 0
            var missingByGaps = Set<Int>()
            for line in gaps {
                let gap = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                reported += try #require(gap["dropped"] as? Int)
                missingByGaps.formUnion(try #require(gap["first_seq"] as? Int)...(try #require(gap["last_seq"] as? Int)))
            }
            let seqs = slow.seqs
            #expect(seqs == seqs.sorted())
            #expect(seqs.count + reported == 30_100)
            #expect(Set(1...30_100).subtracting(seqs.map { Int($0) }) == missingByGaps)
            #expect(sinks.snapshot().first?.dropped == UInt64(reported))
            await good.close()
            await slow.close()
        }
        try await clients.shutdownGracefully()
        try await group.shutdownGracefully()
    }

    @Test func subscribeNarrowsAndWidens() async throws {
        let dir = try TemporaryDirectory("sink-unix")
        let socket = dir.file("s.sock")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let sinks = try await SinkTest.open([SinkTest.unixSettings(socket)], upstreams: ["market", "news"], group: group)
        try await SinkTest.running(sinks) {
            let s = try await SinkTestSubscriber.connect(socket, group: group)
            #expect(await Self.waitForSubscribers(sinks, 1))
            try await s.send("{\"subscribe\":[\"news\"]}\n")
            #expect(await waitUntil { s.otherLines.contains(#"{"ok":"subscribe","upstreams":["news"]}"#) })
            sinks.router.deliver(SinkTest.batch("market", first: 1, count: 10) + SinkTest.batch("news", first: 1, count: 5))
            try await s.send("{\"subscribe\":[\"nope\"]}\n")
            #expect(await waitUntil { s.otherLines.count == 2 })
            #expect(s.otherLines.last?.hasPrefix(#"{"error":"unknown upstream \"nope\"; this socket carries: market, news"#) == true)
            try await s.send("{\"subscribe\":[]}\n")
            #expect(await waitUntil { s.otherLines.count == 3 })
            #expect(s.otherLines.last == #"{"ok":"subscribe","upstreams":["market","news"]}"#)
            sinks.router.deliver(SinkTest.batch("market", first: 11, count: 10))
            #expect(await waitUntil { s.messages == 15 })
            #expect(sinks.snapshot().first?.subscribers.first?.upstreams == [])
            await s.close()
        }
        try await group.shutdownGracefully()
    }

    @Test func garbageAndHugeLinesAreAnsweredWithErrorsAndIgnored() async throws {
        let dir = try TemporaryDirectory("sink-unix")
        let socket = dir.file("s.sock")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let sinks = try await SinkTest.open([SinkTest.unixSettings(socket)], group: group)
        try await SinkTest.running(sinks) {
            let s = try await SinkTestSubscriber.connect(socket, group: group)
            #expect(await Self.waitForSubscribers(sinks, 1))
            try await s.send("hello\n{\"foo\":1}\n\u{0}\u{1}\u{FF}\n")
            try await s.send(String(repeating: "x", count: 70_000))
            try await s.send(String(repeating: "y", count: 10_000) + "\n{\"subs")
            try await s.send("cribe\":[\"market\"]}\n")
            #expect(await waitUntil { s.otherLines.count == 5 })
            let lines = s.otherLines
            try #require(lines.count == 5, "\(lines)")
            #expect(lines[0].hasPrefix(#"{"error":"invalid JSON"#))
            #expect(lines[1].hasPrefix(#"{"error":"unknown request"#))
            #expect(lines[2].hasPrefix(#"{"error":"invalid JSON"#))
            #expect(lines[3].hasPrefix(#"{"error":"line too long"#))
            #expect(lines[4] == #"{"ok":"subscribe","upstreams":["market"]}"#)
            sinks.router.deliver(SinkTest.batch(first: 1, count: 3))
            #expect(await waitUntil { s.messages == 3 })
            #expect(!s.closed)
            await s.close()
        }
        try await group.shutdownGracefully()
    }

    @Test func staleSocketIsReplacedLiveOneAndOtherFilesAreRefused() async throws {
        let dir = try TemporaryDirectory("sink-unix")
        let socket = dir.file("s.sock")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        // A socket file left behind by a dead process.
        let stale = try Self.listeningSocket(at: socket)
        close(stale)
        #expect(UnixSocketPath.probe(socket) == .stale)
        let sinks = try await SinkTest.open([SinkTest.unixSettings(socket)], group: group)
        #expect(UnixSocketPath.probe(socket) == .live)
        await #expect {
            _ = try await SinkTest.open([SinkTest.unixSettings(socket)], group: group)
        } throws: { error in
            "\(error)" == "unix sink \(socket): another process is already listening on this socket (is another wsrelay running?)"
        }
        let regular = try dir.write("plain", "not a socket")
        await #expect {
            _ = try await SinkTest.open([SinkTest.unixSettings(regular)], group: group)
        } throws: { error in
            "\(error)".contains("exists and is not a socket")
        }
        try await SinkTest.running(sinks) {
            let s = try await SinkTestSubscriber.connect(socket, group: group)
            #expect(await Self.waitForSubscribers(sinks, 1))
            sinks.router.deliver(SinkTest.batch(first: 1, count: 5))
            #expect(await waitUntil { s.messages == 5 })
            await s.close()
        }
        try await group.shutdownGracefully()
    }

    @Test func modeOwnerAndGroupAreApplied() async throws {
        let dir = try TemporaryDirectory("sink-unix")
        let socket = dir.file("s.sock")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let sinks = try await SinkTest.open([SinkTest.unixSettings(socket) { $0.mode = 0o600; $0.owner = "root"; $0.group = "0" }], group: group)
        var st = stat()
        #expect(lstat(socket, &st) == 0 && st.st_mode & 0o777 == 0o600 && st.st_uid == 0 && st.st_gid == 0)
        try await SinkTest.running(sinks) {}
        await #expect {
            _ = try await SinkTest.open([SinkTest.unixSettings(dir.file("t.sock")) { $0.owner = "no-such-user-wsrelay" }], group: group)
        } throws: { error in
            "\(error)" == "unix sink \(dir.file("t.sock")): unknown owner \"no-such-user-wsrelay\""
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("t.sock")), "a failed start leaves no socket file")
        try await group.shutdownGracefully()
    }

    @Test func refusedPeersGetAnErrorAndAreClosed() async throws {
        let dir = try TemporaryDirectory("sink-unix")
        let socket = dir.file("s.sock")
        let allowed = dir.file("ok.sock")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let sinks = try await SinkTest.open([
            SinkTest.unixSettings(socket) { $0.allowUIDs = [12345]; $0.allowGIDs = [54321] },
            SinkTest.unixSettings(allowed) { $0.allowUIDs = [12345, geteuid()] },
        ], group: group)
        try await SinkTest.running(sinks) {
            let refused = try await SinkTestSubscriber.connect(socket, group: group)
            #expect(await waitUntil { refused.closed })
            #expect(refused.otherLines == [#"{"error":"permission denied: uid \#(geteuid()) is not allowed on this socket"}"#])
            let ok = try await SinkTestSubscriber.connect(allowed, group: group)
            #expect(await waitUntil { sinks.snapshot()[1].subscribers.count == 1 })
            sinks.router.deliver(SinkTest.batch(first: 1, count: 2))
            #expect(await waitUntil { ok.messages == 2 })
            #expect(sinks.snapshot()[0].subscribers.isEmpty)
            // `wsrelay tail` explains the refusal.
            let result = await Self.tail(TailClient.Options(socketPath: socket))
            #expect(result.status == 69)
            #expect(result.stderr.contains("permission denied"))
            await ok.close()
        }
        try await group.shutdownGracefully()
    }

    @Test func socketActivationByNameAndByPath() async throws {
        let dir = try TemporaryDirectory("sink-unix")
        let byName = dir.file("named.sock")
        let byPath = dir.file("bypath.sock")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let fd1 = try Self.listeningSocket(at: byName)
        let fd2 = try Self.listeningSocket(at: byPath)
        let sinks = try await SinkTest.open([
            SinkTest.unixSettings(nil) { $0.listenFDName = "subscribe" },
            SinkTest.unixSettings(byPath),
        ], group: group, inherited: [.init(fd: fd2, name: "other"), .init(fd: fd1, name: "subscribe")])
        try await SinkTest.running(sinks) {
            let a = try await SinkTestSubscriber.connect(byName, group: group)
            let b = try await SinkTestSubscriber.connect(byPath, group: group)
            #expect(await waitUntil { sinks.snapshot().allSatisfy { $0.subscribers.count == 1 } })
            sinks.router.deliver(SinkTest.batch(first: 1, count: 7))
            #expect(await waitUntil { a.messages == 7 && b.messages == 7 })
            await a.close()
            await b.close()
        }
        #expect(sinks.snapshot().map(\.name) == ["fd:subscribe", byPath])
        #expect(FileManager.default.fileExists(atPath: byName), "an inherited socket's file belongs to systemd")
        #expect(FileManager.default.fileExists(atPath: byPath))
        try await group.shutdownGracefully()
    }

    @Test func missingActivationNameWithoutPathIsAStartupError() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        await #expect {
            _ = try await SinkTest.open([SinkTest.unixSettings(nil) { $0.listenFDName = "subscribe" }], group: group)
        } throws: { error in
            "\(error)".contains("listen_fd_name \"subscribe\" was not passed by systemd")
        }
        try await group.shutdownGracefully()
    }

    @Test func tailPrintsRawDataOfTheChosenUpstreamUntilTheDaemonStops() async throws {
        let dir = try TemporaryDirectory("sink-unix")
        let socket = dir.file("s.sock")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let sinks = try await SinkTest.open([SinkTest.unixSettings(socket)], upstreams: ["market", "news"], group: group)
        let service = SinkServiceRunner(services: [sinks])
        let tail = Task { await Self.tail(TailClient.Options(socketPath: socket, upstreams: ["news"], raw: true)) }
        #expect(await waitUntil { sinks.snapshot()[0].subscribers.first?.upstreams == ["news"] })
        let t = WallClockTime.now()
        sinks.router.deliver(SinkTest.batch("market", first: 1, count: 3) + [
            .message(ReceivedMessage(upstream: "news", epoch: 1, seq: 1, receivedAt: t, kind: .text, payload: ByteBuffer(string: "héllo"))),
            .message(ReceivedMessage(upstream: "news", epoch: 1, seq: 2, receivedAt: t, kind: .binary, payload: ByteBuffer(string: "bin"))),
        ])
        #expect(await waitUntil { (sinks.snapshot()[0].subscribers.first?.bytesWritten ?? 0) > 100 })
        await service.stop()
        let result = await tail.value
        #expect(result.status == 0)
        #expect(result.stdout == "héllo\nbin\n")
        #expect(result.stderr.contains("subscribed to news"))
        try await group.shutdownGracefully()
    }

    @Test func tailExplainsAMissingSocket() async throws {
        let result = await Self.tail(TailClient.Options(socketPath: "/tmp/definitely-not-here.sock"))
        #expect(result.status == 69)
        #expect(result.stderr == "wsrelay tail: no socket at /tmp/definitely-not-here.sock: is wsrelay running and is a [[sink]] type = \"unix\" configured?\n")
    }

    // MARK: Helpers

    /// Close-on-exec: other tests spawn the real binary concurrently, and a child that inherited this
    /// descriptor kept the "stale" socket alive (seen in CI: probe answered `.live` after `close`).
    static func listeningSocket(at path: String) throws -> Int32 {
        let fd = try RawUnixSocket.bind(path)
        guard listen(fd, 16) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        return fd
    }

    struct TailResult: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `TailClient` on a thread of its own with its output going to pipes.
    static func tail(_ options: TailClient.Options) async -> TailResult {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                var out: [Int32] = [0, 0]
                var err: [Int32] = [0, 0]
                pipe(&out)
                pipe(&err)
                let readers = [out[0], err[0]].map { fd in
                    let box = SinkThreadHandOff()
                    let reader = Thread {
                        var data = [UInt8]()
                        var chunk = [UInt8](repeating: 0, count: 65536)
                        while true {
                            let n = read(fd, &chunk, chunk.count)
                            if n <= 0 { break }
                            data += chunk[0..<n]
                        }
                        box.set(String(decoding: data, as: UTF8.self))
                    }
                    reader.start()
                    return box
                }
                let status = TailClient(options: options).run(stdout: out[1], stderr: err[1])
                close(out[1])
                close(err[1])
                let stdout = readers[0].wait()
                let stderr = readers[1].wait()
                close(out[0])
                close(err[0])
                continuation.resume(returning: TailResult(status: status, stdout: stdout, stderr: stderr))
            }
            thread.start()
        }
    }
}

/// A string handed from one thread to another once.
// @unchecked Sendable: `condition` (NSCondition) guards `value`.
final class SinkThreadHandOff: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: String? = nil

    func set(_ v: String) {
        condition.lock()
        value = v
        condition.broadcast()
        condition.unlock()
    }

    func wait() -> String {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(30)
        while value == nil && condition.wait(until: deadline) {}
        return value ?? ""
    }
}
