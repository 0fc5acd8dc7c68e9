import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// Issue 13, item 3: SIGKILL of the daemon mid-flood, then a restart. What reached the file is whole lines in
/// `seq` order; a torn last line (a write the crash cut) is terminated on start, logged, and never glued to
/// the next message; the new run's `seq` restarts at 1 under a greater epoch; subscribers reconnect.
@Suite("crash and restart", .mayBlock, .serialized, .timeLimit(.minutes(2)))
struct CrashRestartTests {
    static func config(_ data: TemporaryDirectory, server: SimulatorServer) -> String {
        """
        [daemon]
        state_dir = "\(data.path)"
        control_socket = "\(data.file("control.sock"))"

        [[upstream]]
        name = "flood"
        url = "\(server.url)/flood?count=50000000&size=100&rate=4000"
        [upstream.reconnect]
        initial = "200ms"
        max = "1s"

        [[sink]]
        type = "file"
        path = "\(data.file("out.jsonl"))"
        fsync = "never"

        [[sink]]
        type = "unix"
        path = "\(data.file("sub.sock"))"
        """
    }

    @Test("SIGKILL mid-flood: whole lines in order; a torn tail is ended on restart; seq restarts under a new epoch; subscribers reconnect")
    func sigkillMidFloodAndRestart() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let data = try TemporaryDirectory()
        let out = data.file("out.jsonl")
        let config = Self.config(data, server: server)

        // Run 1: a subscriber and the file both receive, then the process is killed without warning.
        let run1 = try TemporaryDirectory()
        let first = try RunningDaemon(config: config, in: run1)
        let subscriber = try await SinkTestSubscriber.connect(data.file("sub.sock"), group: MultiThreadedEventLoopGroup.singleton)
        #expect(eventually { EnvelopeLine.parse(file: out).count > 2000 && subscriber.messages > 100 })
        first.process.signal(SIGKILL)
        #expect(first.process.waitForExit() == 128 + SIGKILL)
        #expect(eventually { subscriber.closed }, "the subscriber must see the daemon go")
        #expect(subscriber.outOfOrder == 0)

        // Everything of run 1 that reached the file: whole lines, seq 1...n of one epoch, no hole.
        var text = try String(contentsOfFile: out, encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let cutByTheCrash = !text.hasSuffix("\n")
        lines.removeLast()  // "" after the last newline, or the torn fragment
        let runOne = lines.map { EnvelopeLine.parse(line: $0) }
        #expect(runOne.allSatisfy { $0 != nil }, "a line of run 1 is not whole JSON")
        let seqs = runOne.compactMap { $0?.seq }
        #expect(seqs == countingUp(to: seqs.count))
        let epochOne = try #require(runOne.first??.epoch)
        #expect(runOne.allSatisfy { $0?.epoch == epochOne })
        // A kill rarely lands inside a write; when it did not, cut the next line ourselves the way it would.
        let fragment = cutByTheCrash ? String(text[text.index(after: text.lastIndex(of: "\n")!)...])
            : #"{"upstream":"flood","epoch":\#(epochOne),"seq":\#(seqs.count + 1),"ts":"2026-11-2"#
        if !cutByTheCrash {
            let fd = open(out, O_WRONLY | O_APPEND)
            try #require(fd >= 0)
            _ = fragment.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }

        // Run 2: the torn line is ended and logged; the new messages start on a line of their own.
        let run2 = try TemporaryDirectory()
        let second = try RunningDaemon(config: config, in: run2)
        let again = try await SinkTestSubscriber.connect(data.file("sub.sock"), group: MultiThreadedEventLoopGroup.singleton)
        #expect(eventually { again.messages > 100 }, "a reconnected subscriber receives the new run")
        #expect(eventually { EnvelopeLine.parse(file: out).count > seqs.count + 100 })
        #expect(second.stop() == 0, "\(second.log)")
        #expect(second.log.contains("torn line (\(fragment.utf8.count) bytes"), "\(second.log)")

        text = try String(contentsOfFile: out, encoding: .utf8)
        lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.last == "", "the graceful stop ends on a whole line")
        lines.removeLast()
        #expect(lines[seqs.count] == fragment, "the torn fragment stays alone on its line")
        let runTwo = lines[(seqs.count + 1)...].map { EnvelopeLine.parse(line: $0) }
        #expect(runTwo.allSatisfy { $0 != nil }, "a line of run 2 is not whole JSON")
        let epochTwo = try #require(runTwo.first??.epoch)
        #expect(epochTwo > epochOne, "seq restarts at 1: only a greater epoch tells the runs apart")
        #expect(runTwo.compactMap { $0?.seq } == countingUp(to: runTwo.count))
        #expect(again.outOfOrder == 0)
        await subscriber.close()
        await again.close()
    }
}

extension EnvelopeLine {
    /// One line decoded, nil unless it is a whole JSON object.
    static func parse(line: String) -> EnvelopeLine? {
        (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]).map(EnvelopeLine.init)
    }
}
