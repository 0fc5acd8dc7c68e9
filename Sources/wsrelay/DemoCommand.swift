import ArgumentParser
import Foundation
import NIOPosix
import NIOConcurrencyHelpers
import WSRelaySimulator

/// `wsrelay demo`: wsrelay doing its job on a machine with no network, narrated. Everything runs on
/// 127.0.0.1 in a temporary directory: the project's upstream simulator and token endpoint in this process,
/// the real daemon (this same binary, `wsrelay run`) as a child, a subscriber on its Unix socket.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a self-contained demonstration against a local upstream (no network, no config).",
        discussion: """
            Shows messages flowing to a file and a socket subscriber, a server close 4001, one token refresh, \
            a reconnect with no message lost, and a clean exit on SIGTERM. Takes about 10 seconds; leaves its \
            files in a temporary directory and prints where.
            """
    )

    func run() throws {
        throw ValidationError("demo runs asynchronously; this is dispatched by main.swift")
    }

    func execute() async -> Int32 {
        do {
            try await Demo().run()
            return 0
        } catch {
            printError("wsrelay demo: \(error)")
            return 1
        }
    }
}

private struct DemoFailure: Error, CustomStringConvertible {
    var description: String
}

/// One envelope line as the demo's subscriber saw it.
private struct SeenLine: Sendable {
    var seq: Int?
    var epoch: Int?
    var event: String?
}

/// Reads a Unix socket's lines on a thread of its own.
private final class DemoSubscriber: Sendable {
    private let seen = NIOLockedValueBox<[SeenLine]>([])
    private let fd: Int32

    init(path: String) throws {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        fd = descriptor
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8).prefix($0.count - 1)) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw DemoFailure(description: "cannot connect to \(path): \(String(cString: strerror(errno)))") }
        Thread { [self] in readLoop(descriptor) }.start()
    }

    private func readLoop(_ fd: Int32) {
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { return }
            pending.append(contentsOf: buffer[0..<n])
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(pending[..<newline])
                pending.removeSubrange(...newline)
                let object = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] ?? [:]
                let entry = SeenLine(seq: (object["seq"] as? NSNumber)?.intValue, epoch: (object["epoch"] as? NSNumber)?.intValue,
                                     event: object["event"] as? String)
                seen.withLockedValue { $0.append(entry) }
            }
        }
    }

    var lines: [SeenLine] { seen.withLockedValue { $0 } }
    var messages: [SeenLine] { lines.filter { $0.seq != nil } }

    deinit { close(fd) }
}

private struct Demo {
    func say(_ text: String) {
        print(text)
        fflush(nil)
    }

    /// Polls `condition` for up to `seconds`.
    func wait(_ seconds: Double, _ what: String, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return }
            usleep(20_000)
        }
        if !condition() { throw DemoFailure(description: "gave up waiting for \(what)") }
    }

    func run() async throws {
        let directory = try makeDirectory()
        let group = MultiThreadedEventLoopGroup.singleton
        var options = SimulatorServer.Options()
        options.requiredTokens = []
        let upstream = try await SimulatorServer.start(group: group, options: options)
        let tokens = try await SimulatorTokenEndpoint.start(group: group) { token in upstream.setValidTokens([token]) }
        defer { Task { await upstream.stop(); await tokens.stop() } }

        let config = "\(directory)/wsrelay.toml"
        let file = "\(directory)/market.jsonl"
        let socketPath = "\(directory)/subscribe.sock"
        try "demo-refresh-token\n".write(toFile: "\(directory)/refresh_token", atomically: true, encoding: .utf8)
        try """
            # Written by `wsrelay demo`.
            [daemon]
            state_dir = "\(directory)"
            control_socket = "\(directory)/control.sock"

            [[upstream]]
            name = "market"
            url = "\(upstream.url)/market?count=100000000&size=80&rate=200"
            auth = "demo"
            subscribe = ['{"op":"subscribe","channel":"ticker"}']

            [auth.demo]
            type = "oauth2"
            token_url = "\(tokens.url)"
            client_id = "wsrelay-demo"
            refresh_token_file = "\(directory)/refresh_token"

            [[sink]]
            type = "file"
            path = "\(file)"
            events = true

            [[sink]]
            type = "unix"
            path = "\(socketPath)"
            """.write(toFile: config, atomically: true, encoding: .utf8)

        say("wsrelay demo — everything on 127.0.0.1, files in \(directory)")
        say("  upstream simulator \(upstream.url)/market (200 msg/s, demands a bearer token); token endpoint \(tokens.url)")

        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            daemon.executableURL = URL(fileURLWithPath: exe)
        }
        daemon.arguments = ["run", "--config", config]
        _ = FileManager.default.createFile(atPath: "\(directory)/wsrelay.log", contents: nil)
        daemon.standardError = FileHandle(forWritingAtPath: "\(directory)/wsrelay.log")
        daemon.standardOutput = FileHandle.nullDevice
        try daemon.run()
        defer { if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) } }

        try wait(10, "the subscriber socket") { FileManager.default.fileExists(atPath: socketPath) }
        let subscriber = try DemoSubscriber(path: socketPath)
        try wait(10, "the first messages") { !subscriber.messages.isEmpty }
        say("1. wsrelay started (pid \(daemon.processIdentifier)): fetched a token first (\(tokens.requestCount) request), connected, subscribed")
        try wait(10, "messages") { subscriber.messages.count >= 300 }
        let before = subscriber.messages
        say("2. messages flowing: \(before.count) so far to \(file) and to a subscriber on \(socketPath)")

        upstream.closeAll(code: 4001, reason: "token expired")
        say("3. the upstream closed the connection: 4001 \"token expired\"")
        try wait(10, "the reconnect") { subscriber.messages.contains { ($0.epoch ?? 0) > (before.last?.epoch ?? 0) } }
        let epochs = Set(subscriber.messages.compactMap(\.epoch)).sorted()
        say("4. wsrelay refreshed the token once (token endpoint requests: \(tokens.requestCount)) and reconnected at once (epochs \(epochs.map(String.init).joined(separator: " → ")))")
        try wait(10, "more messages") { subscriber.messages.count >= before.count + 200 }
        // A subscriber gets the stream from the moment it connected, so its first seq may be above 1.
        let seqs = subscriber.messages.compactMap(\.seq)
        guard let first = seqs.first, seqs == Array(first..<(first + seqs.count)) else {
            throw DemoFailure(description: "seq not continuous: \(seqs.prefix(20))...")
        }
        say("5. no message lost: the subscriber has seq \(first)…\(first + seqs.count - 1), continuous across the reconnect")

        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        let fileLines = (try? String(contentsOfFile: file, encoding: .utf8))?.split(separator: "\n") ?? []
        let fileSeqs = fileLines.compactMap { line in
            ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["seq"] as? Int
        }
        guard daemon.terminationStatus == 0 else {
            throw DemoFailure(description: "wsrelay exited with \(daemon.terminationStatus); see \(directory)/wsrelay.log")
        }
        guard !fileSeqs.isEmpty, fileSeqs == Array(1...fileSeqs.count) else {
            throw DemoFailure(description: "the file's seq is not 1…N: see \(file)")
        }
        say("6. SIGTERM: wsrelay closed the upstream with 1001, wrote and fsynced everything, exit status 0")
        say("")
        say("Files: \(file) (seq 1…\(fileSeqs.count) plus connected/disconnected records, \(fileLines.count) lines)")
        say("       \(directory)/wsrelay.log (the daemon's log), \(config) (the config it ran)")
        guard tokens.requestCount == 2 else {
            throw DemoFailure(description: "expected exactly 2 token requests (initial + one refresh), saw \(tokens.requestCount)")
        }
    }

    func makeDirectory() throws -> String {
        var template = Array("/tmp/wsrelay-demo.XXXXXX".utf8CString)
        guard let result = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw DemoFailure(description: "cannot create a temporary directory")
        }
        return String(cString: result)
    }
}
