import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// Issue 13, item 4: a real systemd-journald (in a private mount namespace, `scripts/journald-sandbox`) takes
/// the daemon's own log (`log_target = "journal"`) and a journal sink; `journalctl -o json` reads both back.
@Suite("a real journald", .mayBlock, .serialized, .timeLimit(.minutes(2)),
       .enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/lib/systemd/systemd-journald"),
                "needs root and systemd-journald (package systemd)"))
struct JournaldTests {
    static let secret = "journal-secret-token-5b1e9c"

    /// The sandbox script, found from this file's path (tests run from the package root or elsewhere).
    static var sandbox: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/journald-sandbox").path
    }

    /// A field's bytes: journalctl prints text as a JSON string and anything else as an array of byte values.
    static func bytes(_ value: Any?) -> [UInt8]? {
        if let text = value as? String { return Array(text.utf8) }
        if let numbers = value as? [NSNumber] { return numbers.map { $0.uint8Value } }
        return nil
    }

    static func string(_ entry: [String: Any], _ key: String) -> String? {
        bytes(entry[key]).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("PRIORITY, SYSLOG_IDENTIFIER and WSRELAY_* fields of the log handler and the journal sink; binary payloads intact; no secret")
    func logHandlerAndSinkInARealJournal() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton,
                                                     options: { var o = SimulatorServer.Options(); o.requiredTokens = [Self.secret]; return o }())
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        try dir.write("token", Self.secret + "\n", mode: 0o600)
        let out = dir.file("out.jsonl")
        let config = try dir.write("wsrelay.toml", """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"
            log_target = "journal"
            log_level = "debug"

            [[upstream]]
            name = "text"
            url = "\(server.url)/t?count=50&size=80"
            auth = "main"

            [[upstream]]
            name = "bin"
            url = "\(server.url)/b?count=20&size=64&binary=1"
            auth = "main"

            [auth.main]
            type = "static"
            token_file = "\(dir.file("token"))"

            [[sink]]
            type = "journal"
            events = true

            [[sink]]
            type = "file"
            path = "\(out)"
            fsync = "never"
            """)
        // Inside the namespace: run the daemon until the file sink has the 70 messages, then SIGTERM it.
        let script = """
            "$0" run --config "$1" & pid=$!
            i=0
            while [ $i -lt 300 ] && [ "$(wc -l < "$2" 2>/dev/null || echo 0)" -lt 70 ]; do sleep 0.1; i=$((i+1)); done
            kill -TERM $pid
            wait $pid
            """
        let json = dir.file("journal.json")
        let result = try WSRelayProcess.runExternal(Self.sandbox, [json, "--", "/bin/sh", "-c", script,
                                                                   WSRelayProcess.binaryPath, config, out],
                                                    directory: dir, name: "sandbox")
        #expect(result.status == 0, "\(result.stderr)")
        let text = try String(contentsOfFile: json, encoding: .utf8)
        let entries = text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let ours = entries.filter { Self.string($0, "SYSLOG_IDENTIFIER") == "wsrelay" }
        #expect(!ours.isEmpty, "nothing from wsrelay in \(entries.count) entries; \(result.stderr)")

        // The log handler: levels map to syslog priorities, metadata to fields.
        let started = try #require(ours.first { Self.string($0, "MESSAGE") == "wsrelay started" })
        #expect(Self.string(started, "PRIORITY") == "5")
        #expect(Self.string(started, "WSRELAY_UPSTREAMS") == "2")
        let stopped = try #require(ours.first { Self.string($0, "MESSAGE") == "wsrelay stopped" })
        #expect(Self.string(stopped, "WSRELAY_EXIT_STATUS") == "0")
        let connected = ours.filter { Self.string($0, "UPSTREAM") == "text" && Self.string($0, "WSRELAY_SEQ") == nil }
        #expect(!connected.isEmpty, "no log entry with the UPSTREAM field")
        #expect(ours.contains { Self.string($0, "PRIORITY") == "7" }, "debug lines are priority 7")

        // The journal sink: one entry per message, seq 1...n per upstream, the payload itself.
        let textMessages = ours.filter { Self.string($0, "WSRELAY_UPSTREAM") == "text" && Self.string($0, "WSRELAY_TYPE") == "text" }
        #expect(textMessages.count >= 50)
        #expect(textMessages.compactMap { Self.string($0, "WSRELAY_SEQ").flatMap { Int($0) } } == countingUp(to: textMessages.count))
        #expect(textMessages.allSatisfy { Self.string($0, "PRIORITY") == "6" && Self.string($0, "WSRELAY_EPOCH") != nil })
        #expect(textMessages.allSatisfy { Self.string($0, "MESSAGE")?.hasPrefix("{\"n\":") == true })
        let binary = ours.filter { Self.string($0, "WSRELAY_UPSTREAM") == "bin" && Self.string($0, "WSRELAY_TYPE") == "binary" }
        #expect(binary.count >= 20)
        #expect(binary.allSatisfy { Self.string($0, "MESSAGE") == "binary message, 64 bytes" })
        let payloads = binary.compactMap { Self.bytes($0["WSRELAY_DATA"]) }
        #expect(payloads.count == binary.count && payloads.allSatisfy { $0.count == 64 }, "binary payloads missing or cut")
        let numbers = payloads.map { $0.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        #expect(zip(numbers, numbers.dropFirst()).allSatisfy { $1 > $0 }, "binary payloads are not the server's, in order")
        #expect(ours.contains { Self.string($0, "WSRELAY_EVENT") == "connected" })

        // The token is in no field of any entry (the fingerprint is allowed).
        #expect(!text.contains(Self.secret))
        let secretBytes = Array(Self.secret.utf8)
        for entry in ours {
            for value in entry.values {
                if let b = Self.bytes(value) { #expect(!b.contains(secretBytes), "the secret in a binary field") }
            }
        }
    }

    /// The cancellation grace running out, made real: journald stopped (SIGSTOP) fills its socket queue and
    /// the journal sink's writer blocks inside `sd_journal_sendv`, so the graceful drain cannot finish and
    /// neither can cancellation. ServiceGroup's own cancellation timeout would `fatalError` (a crash);
    /// the daemon's `ShutdownDeadline` logs and exits 1 once `shutdown_timeout` + 2 s have passed.
    @Test("a journald that stops reading: SIGTERM ends in a clean exit 1 at shutdown_timeout + grace, never a crash")
    func stalledJournaldEndsInACleanDeadlineExit() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory()
        let config = try dir.write("wsrelay.toml", """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"
            log_target = "stderr"
            shutdown_timeout = "2s"

            [[upstream]]
            name = "flood"
            url = "\(server.url)/flood?count=100000000&size=100&rate=4000"

            [[sink]]
            type = "journal"
            """)
        let script = """
            echo $JOURNALD_PID > "$2"
            "$0" run --config "$1" 2> "$3"
            """
        let sandbox = try WSRelayProcess([dir.file("journal.json"), "--", "/bin/sh", "-c", script, WSRelayProcess.binaryPath,
                                          config, dir.file("journald.pid"), dir.file("daemon.log")],
                                         directory: dir, name: "sandbox", executable: Self.sandbox)
        #expect(eventually { (ControlSocket.upstream("flood", in: dir)?.messages ?? 0) > 500 }, "\(sandbox.stderr)")
        let journald = try #require(dir.read("journald.pid").flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        let daemonPID = try #require(ControlSocket.status(dir)?.daemon.pid)
        #expect(kill(journald, SIGSTOP) == 0)
        defer { kill(journald, SIGCONT) }
        // journald's queue is full and the writer is stuck: the sink's buffer grows instead of draining.
        #expect(eventually { (ControlSocket.status(dir)?.sinks.first { $0.kind == "journal" }?.bufferedBytes ?? 0) > 100_000 })

        let start = ContinuousClock.now
        #expect(kill(daemonPID, SIGTERM) == 0)
        #expect(eventually(timeout: .seconds(30)) { !processIsAlive(daemonPID) })
        let took = ContinuousClock.now - start
        kill(journald, SIGCONT)
        let status = sandbox.waitForExit(timeout: .seconds(30))
        let log = dir.read("daemon.log") ?? ""
        #expect(status == 1, "exit status \(String(describing: status)); \(log.suffix(2000))")
        #expect(log.contains("did not finish within"), "\(log.suffix(2000))")
        #expect(!log.contains("Fatal error"), "a crash: \(log.suffix(2000))")
        // 2 s shutdown_timeout + 2 s cancellation grace; 6 s more is only a safety net for a loaded machine.
        #expect(took >= .seconds(4) && took < .seconds(10), "exit took \(took)")
    }
}
