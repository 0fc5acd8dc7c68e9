import ArgumentParser
import NIOCore
import NIOPosix
import WSRelayCore

/// `wsrelay-conformance`: the Autobahn|Testsuite echo client, built on the daemon's own `UpstreamConnection`
/// (and so its `WebSocketMessageAssembler`), not on a separate WebSocket implementation.
///
/// Speaks the fuzzing server's protocol: `/getCaseCount` answers with one text message, every
/// `/runCase?case=N&agent=A` is a connection whose messages are echoed back unchanged until the server
/// closes, and `/updateReports?agent=A` makes the server write its reports. `scripts/conformance` runs it
/// against kosoku's fuzzing server and judges the report.
@main
struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsrelay-conformance",
        abstract: "Echo client for the Autobahn|Testsuite fuzzing server, using wsrelay's upstream connection code."
    )

    @Option(help: "The fuzzing server, e.g. ws://127.0.0.1:9001.")
    var server: String

    @Option(help: "Agent name the server files the results under.")
    var agent = "wsrelay"

    @Option(help: "Case numbers to run, e.g. 1-300 or 5 (default: all the server reports).")
    var cases: String?

    @Option(help: "Largest message accepted, in bytes (Autobahn's 9.x cases send up to 16 MiB).")
    var maxMessageSize = 20 * 1024 * 1024

    @Option(help: "Seconds after which one case is abandoned (the connection is dropped).")
    var caseTimeout = 60

    @Flag(help: "Print one line per case.")
    var verbose = false

    func validate() throws {
        guard case .success(let url) = WebSocketURLParser.parse(server), !url.secure else {
            throw ValidationError("--server must be a ws:// URL")
        }
        if let cases { _ = try Self.parseRange(cases) }
        guard caseTimeout > 0, maxMessageSize > 0 else { throw ValidationError("--case-timeout and --max-message-size must be positive") }
    }

    func run() throws {
        guard case .success(let base) = WebSocketURLParser.parse(server) else { throw ValidationError("bad --server") }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let client = EchoClient(loop: group.next(), base: base, maxMessageSize: maxMessageSize,
                                caseTimeout: .seconds(caseTimeout))

        let countResult = try client.run(path: "/getCaseCount", echo: false)
        guard let first = countResult.messages.first, let count = Int(first.trimmingCharacters()) else {
            throw RunError("no case count from \(server)/getCaseCount: \(countResult.summary)")
        }
        let range = try cases.map(Self.parseRange) ?? 1...max(count, 1)
        guard count > 0 else { throw RunError("the server has no cases") }
        let selected = range.clamped(to: 1...count)
        print("wsrelay-conformance: \(count) cases on the server, running \(selected.lowerBound)-\(selected.upperBound) as agent \"\(agent)\"")

        let agentQuery = Self.queryEscape(agent)
        var timedOut: [Int] = []
        let started = ContinuousClock.now
        for n in selected {
            let caseStart = ContinuousClock.now
            let result = try client.run(path: "/runCase?case=\(n)&agent=\(agentQuery)", echo: true)
            if result.timedOut { timedOut.append(n) }
            if verbose || result.timedOut {
                let elapsed = ContinuousClock.now - caseStart
                print("case \(n): \(result.summary) (\(elapsed.secondsText))")
            }
        }
        let update = try client.run(path: "/updateReports?agent=\(agentQuery)", echo: false)
        if verbose { print("updateReports: \(update.summary)") }
        let total = ContinuousClock.now - started
        print("wsrelay-conformance: ran \(selected.count) cases in \(total.secondsText)"
              + (timedOut.isEmpty ? "" : "; timed out: \(timedOut.map(String.init).joined(separator: ", "))"))
    }


    static func parseRange(_ s: String) throws -> ClosedRange<Int> {
        let parts = s.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        switch parts.count {
        case 1: if let a = parts[0], a >= 1 { return a...a }
        case 2: if let a = parts[0], let b = parts[1], a >= 1, b >= a { return a...b }
        default: break
        }
        throw ValidationError("--cases must be N or N-M with 1 <= N <= M, not \"\(s)\"")
    }

    static func queryEscape(_ s: String) -> String {
        var out = ""
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(Character(Unicode.Scalar(byte)))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }
}

struct RunError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        String(self.drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace }).reversed())
    }
}
