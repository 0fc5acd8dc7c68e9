import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// Issue 13, item 3: the daemon runs out of file descriptors (its RLIMIT_NOFILE lowered below what it has
/// open, with `prlimit --pid`). Each failed connect and each subscriber it cannot accept is one clear log
/// line (at most one a second per listener); nothing crashes; the connected upstream keeps writing; systemd's
/// watchdog keeps being fed; once descriptors free up (subscribers leave), the upstream reconnects and the
/// waiting subscriber is served.
@Suite("descriptor exhaustion", .mayBlock, .serialized, .timeLimit(.minutes(2)),
       .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit"), "needs prlimit (util-linux)"))
struct FdExhaustionTests {
    static func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    static func highestDescriptor(_ pid: Int32) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap { Int($0) }.max() ?? -1
    }

    static func prlimit(_ pid: Int32, soft: Int, in dir: TemporaryDirectory) throws {
        let result = try WSRelayProcess.runExternal("/usr/bin/prlimit", ["--pid", "\(pid)", "--nofile=\(soft):"], directory: dir, name: "prlimit")
        #expect(result.status == 0, "prlimit: \(result.stderr)")
    }

    /// A daemon with a steady upstream written to a file, plus whatever `extra` adds (more upstreams, sinks).
    static func config(_ dir: TemporaryDirectory, server: SimulatorServer, extra: String = "") -> String {
        """
        [daemon]
        state_dir = "\(dir.path)"
        control_socket = "\(dir.file("control.sock"))"

        [[upstream]]
        name = "steady"
        url = "\(server.url)/steady?count=100000000&size=50&rate=100"

        [[sink]]
        type = "file"
        path = "\(dir.file("out.jsonl"))"
        fsync = "never"
        \(extra)
        """
    }

    @Test("out of descriptors: a clear line per failed connect and subscriber, no crash, recovery when descriptors free up")
    func outOfDescriptors() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let sock = dir.file("sub.sock")
        let daemon = try RunningDaemon(config: Self.config(dir, server: server, extra: """

            [[sink]]
            type = "unix"
            path = "\(sock)"

            [[upstream]]
            name = "flappy"
            url = "\(server.url)/flappy?count=20&rate=100&close=1000"
            [upstream.reconnect]
            initial = "100ms"
            max = "500ms"
            """), in: dir, environment: ["WATCHDOG_USEC": "1000000"])
        let group = MultiThreadedEventLoopGroup.singleton
        var subscribers: [SinkTestSubscriber] = []
        for _ in 0..<24 { subscribers.append(try await SinkTestSubscriber.connect(sock, group: group)) }
        #expect(eventually { subscribers.allSatisfy { $0.messages > 10 } })
        let flappyBefore = { server.recorder.connections.filter { $0.path.hasPrefix("/flappy") }.count }
        #expect(eventually { flappyBefore() >= 2 })

        // flappy waits (paused, its connection closed) while the subscriber's accept fails: its next connect would
        // otherwise race the accept to the first failed call, which makes every listener hold its reads.
        #expect(try daemon.command(["pause", "flappy"]).status == 0)
        #expect(eventually {
            ControlSocket.upstream("flappy", in: dir)?.state == "paused"
                && server.recorder.connections.filter { $0.path.hasPrefix("/flappy") }.allSatisfy(\.closed)
        })

        // Below what is open: every new descriptor fails until at least eleven are closed.
        let pid = daemon.process.pid
        let open = Self.openDescriptors(pid)
        try Self.prlimit(pid, soft: open - 10, in: dir)
        let exhausted = ContinuousClock.now
        let connectsAtLimit = flappyBefore()
        let waiting = try await SinkTestSubscriber.connect(sock, group: group)  // the kernel queues it; the daemon cannot accept
        // The accept fails and says so, unless the once-a-second probe noticed the scarcity first: then no
        // listener tries (the subscriber stays queued) and the scarcity line is the one the operator sees.
        #expect(eventually {
            daemon.log.contains("cannot accept a connection: Too many open files (EMFILE)")
                || daemon.log.contains("out of file descriptors: released")
        }, "\(daemon.log.suffix(3000))")
        if !daemon.log.contains("cannot accept a connection") {
            #expect(!daemon.log.lowercased().contains("too many open files"), "a call failed but no accept line: \(daemon.log.suffix(3000))")
        }
        #expect(try daemon.command(["resume", "flappy"]).status == 0)
        #expect(eventually { daemon.log.components(separatedBy: "\n").contains { $0.contains("flappy") && $0.lowercased().contains("too many open files") } },
                "no line names the failed connect: \(daemon.log.components(separatedBy: "\n").filter { $0.contains("flappy") }.suffix(15))")
        // The daemon gives its reserve up for the libraries under it (libdispatch traps when it cannot open
        // /proc/<tid>/stat) and stops making descriptors of its own until enough are free again.
        #expect(eventually { daemon.log.contains("out of file descriptors: released") }, "\(daemon.log.suffix(3000))")
        // The operator can still ask: the control socket is served while descriptors are scarce.
        #expect(eventually { (ControlSocket.upstream("steady", in: dir)?.messages ?? 0) > 0 },
                "no status while descriptors are scarce: \(daemon.log.suffix(2000))")
        // RLIMIT_NOFILE caps descriptor numbers, not their count: when flappy's socket (a low number) closes,
        // that number can be taken again — by flappy or by the waiting subscriber. Which one wins is a race, so
        // the test asserts the failures that did happen (above), not that every attempt failed.
        #expect(processIsAlive(pid), "\(daemon.log.suffix(4000))")
        let steadyLines = EnvelopeLine.parse(file: dir.file("out.jsonl")).filter { $0.upstream == "steady" }.count
        #expect(eventually { EnvelopeLine.parse(file: dir.file("out.jsonl")).filter { $0.upstream == "steady" }.count > steadyLines + 100 },
                "the connected upstream must keep writing")

        // A listener with a peer waiting stays readable: each failed accept is followed by a second's pause
        // (AcceptFailureBackoff), not retried at once in a busy loop — so at most one line a second.
        let acceptLines = daemon.log.components(separatedBy: "\n").filter { $0.contains("cannot accept a connection") }.count
        let secondsExhausted = Int((ContinuousClock.now - exhausted).components.seconds)
        #expect(acceptLines <= secondsExhausted + 2, "\(acceptLines) accept failures logged in \(secondsExhausted) s: the listener retries without a pause")

        // systemd's watchdog is still fed: a WATCHDOG=1 that needed a new socket per message (libsystemd's
        // sd_notify) would fail from here on, and systemd would kill a daemon that is otherwise coping.
        daemon.notify.discardReceived()
        var pings = 0
        _ = daemon.notify.receive(until: { message in
            if message.notifyFields["WATCHDOG"] == "1" { pings += 1 }
            return pings >= 3
        })
        #expect(pings >= 3, "WATCHDOG=1 stopped while out of descriptors")

        // Descriptors free up: the 24 subscribers leave (at least 14 of their numbers are under the lowered limit), which with
        // the released reserve is enough to end the scarcity. The waiting one is served; flappy connects again.
        for subscriber in subscribers { await subscriber.close() }
        #expect(eventually { daemon.log.contains("file descriptors are available again") }, "\(daemon.log.suffix(3000))")
        #expect(eventually { waiting.messages > 10 }, "the queued subscriber was never accepted")
        let failedConnects = daemon.log.components(separatedBy: "\n").filter { $0.contains("connect failed") }.count
        #expect(eventually { flappyBefore() > connectsAtLimit + 1 }, "flappy did not reconnect")
        #expect(failedConnects >= 1)
        await waiting.close()
        #expect(daemon.stop() == 0, "\(daemon.log.components(separatedBy: "\n").filter { !$0.contains("connect failed") && !$0.contains(" info ") }.suffix(40).joined(separator: "\n"))")
        #expect(!daemon.log.contains("Fatal error"))
        for name in ["steady", "flappy"] {
            let seqs = EnvelopeLine.parse(file: dir.file("out.jsonl")).filter { $0.upstream == name }.compactMap(\.seq)
            #expect(seqs == Array(1..<(seqs.count + 1)), "\(name): a hole in seq")
        }
    }

    @Test("a limit that leaves only a few descriptors free is noticed before any call fails, and its end too")
    func fewLeftIsNoticedEarly() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: Self.config(dir, server: server), in: dir)
        #expect(eventually { EnvelopeLine.parse(file: dir.file("out.jsonl")).count > 10 })
        let pid = daemon.process.pid
        // Three numbers above the highest open one (and whatever holes lie below it): nothing fails yet, but the
        // fourth number below the limit is taken, so the probe says descriptors are scarce.
        try Self.prlimit(pid, soft: Self.highestDescriptor(pid) + 4, in: dir)
        #expect(eventually { daemon.log.contains("out of file descriptors: released") }, "\(daemon.log.suffix(2000))")
        #expect(!daemon.log.lowercased().contains("too many open files"), "a call failed before the probe noticed: \(daemon.log.suffix(2000))")
        // Room again: the scarcity ends by itself.
        try Self.prlimit(pid, soft: Self.highestDescriptor(pid) + 200, in: dir)
        #expect(eventually { daemon.log.contains("file descriptors are available again") }, "\(daemon.log.suffix(2000))")
        #expect(daemon.stop() == 0)
    }
}
