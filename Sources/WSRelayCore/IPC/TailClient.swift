import Glibc

/// `wsrelay tail`: connects to a Unix socket sink, optionally subscribes to some upstreams, and prints what
/// arrives, line by line.
///
/// Plain blocking POSIX calls: one socket, one thread, no event loop. Replies from the daemon
/// (`{"ok":...}`, `{"error":...}`) go to stderr, never mixed into the data on stdout. With `--raw` only the
/// `data` of each message is printed (text as is, binary base64-decoded), one message per line, and event
/// records (connected/disconnected/gap) go to stderr.
///
/// Exit status: 0 when the daemon closes the connection, 69 when the socket cannot be reached or the
/// subscriber is refused, 64 when the daemon rejects the `--upstream` names.
public struct TailClient: Sendable {
    public static let defaultSocketPath = "/run/wsrelay/subscribe.sock"

    public struct Options: Sendable, Equatable {
        public var socketPath: String
        public var upstreams: [String]
        public var raw: Bool

        public init(socketPath: String = TailClient.defaultSocketPath, upstreams: [String] = [], raw: Bool = false) {
            self.socketPath = socketPath
            self.upstreams = upstreams
            self.raw = raw
        }
    }

    /// Why tail stopped, with the one line to print and the exit status.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        public var exitCode: Int32
    }

    public let options: Options

    public init(options: Options) {
        self.options = options
    }

    /// Connects, streams until the connection ends, and returns the exit status (messages already printed).
    public func run(stdout: Int32 = STDOUT_FILENO, stderr: Int32 = STDERR_FILENO) -> Int32 {
        let fd: Int32
        do throws(Failure) {
            fd = try Self.connect(options.socketPath)
        } catch {
            Self.writeAll(stderr, Array("wsrelay tail: \(error.description)\n".utf8))
            return error.exitCode
        }
        defer { close(fd) }
        if !options.upstreams.isEmpty {
            let line = Self.subscribeLine(options.upstreams)
            guard Self.writeAll(fd, line) else {
                Self.writeAll(stderr, Array("wsrelay tail: cannot send the subscription: \(SystemError.describe(errno))\n".utf8))
                return DaemonExitCode.unavailable.rawValue
            }
        }
        var formatter = TailLineFormatter(raw: options.raw, upstreams: options.upstreams)
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                Self.writeAll(stderr, Array("wsrelay tail: read failed: \(SystemError.describe(errno))\n".utf8))
                return 1
            }
            if n == 0 { break }
            buffer.append(contentsOf: chunk[0..<n])
            var start = 0
            var out: [UInt8] = []
            while let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let outcome = formatter.handle(buffer[start..<newline])
                start = newline + 1
                if let data = outcome.stdout { out.append(contentsOf: data) }
                if let message = outcome.stderr {
                    if !out.isEmpty { guard Self.writeAll(stdout, out) else { return 0 }; out.removeAll(keepingCapacity: true) }
                    Self.writeAll(stderr, message)
                }
                if let failure = outcome.failure {
                    Self.writeAll(stderr, Array("wsrelay tail: \(failure.description)\n".utf8))
                    return failure.exitCode
                }
            }
            buffer.removeFirst(start)
            if !out.isEmpty && !Self.writeAll(stdout, out) { return 0 }  // stdout closed (| head): done
        }
        if formatter.refusal != nil {
            Self.writeAll(stderr, Array("wsrelay tail: \(options.socketPath): \(formatter.refusal!)\n".utf8))
            return DaemonExitCode.unavailable.rawValue
        }
        Self.writeAll(stderr, Array("wsrelay tail: wsrelay closed the connection\n".utf8))
        return 0
    }

    /// A connected socket, or the one-line explanation of why not. `purpose` finishes the explanation when
    /// nobody listens (what the socket should be and where it is configured).
    public static func connect(
        _ path: String, purpose: String = "is wsrelay running and is a [[sink]] type = \"unix\" configured?"
    ) throws(Failure) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(SystemError.describe(errno))", exitCode: DaemonExitCode.unavailable.rawValue) }
        let result = UnixSocketPath.withSocketAddress(path) { address, length -> Int32 in
            while true {
                if Glibc.connect(fd, address, length) == 0 { return 0 }
                if errno != EINTR { return errno }
            }
        }
        let code: Int32
        switch result {
        case .failure(let problem):
            close(fd)
            throw Failure(description: "\(path): \(problem.message)", exitCode: DaemonExitCode.usage.rawValue)
        case .success(let c):
            code = c
        }
        if code == 0 { return fd }
        close(fd)
        throw Failure(description: explain(code, path: path, purpose: purpose), exitCode: DaemonExitCode.unavailable.rawValue)
    }

    static func explain(_ code: Int32, path: String, purpose: String) -> String {
        switch code {
        case ENOENT:
            return "no socket at \(path): \(purpose)"
        case ECONNREFUSED:
            return "nothing is listening on \(path) (a stale socket): is wsrelay running?"
        case EACCES, EPERM:
            return "permission denied on \(path): the socket's mode, owner or group do not let this user connect"
        case ENOTSOCK:
            return "\(path) is not a socket"
        default:
            return "cannot connect to \(path): \(SystemError.describe(code))"
        }
    }

    static func subscribeLine(_ upstreams: [String]) -> [UInt8] {
        var line = Array("{\"subscribe\":[".utf8)
        JSONStringEscaper.appendElements(upstreams, to: &line)
        line.append(contentsOf: "]}\n".utf8)
        return line
    }

    @discardableResult
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return false }
            }
            return true
        }
    }
}

/// Decides, per received line, what `wsrelay tail` prints where. Pure, so it is tested without sockets.
struct TailLineFormatter {
    struct Outcome: Equatable {
        var stdout: [UInt8]? = nil
        var stderr: [UInt8]? = nil
        var failure: TailClient.Failure? = nil
    }

    let raw: Bool
    let upstreams: Set<String>
    /// Set when the daemon refused this subscriber (an error before anything else).
    private(set) var refusal: String? = nil
    private var awaitingSubscribeReply: Bool
    private var receivedData = false

    init(raw: Bool, upstreams: [String]) {
        self.raw = raw
        self.upstreams = Set(upstreams)
        self.awaitingSubscribeReply = !upstreams.isEmpty
    }

    mutating func handle(_ line: ArraySlice<UInt8>) -> Outcome {
        if line.starts(with: Self.errorPrefix) {
            let message = (try? MiniJSON.parse(line))?["error"]?.stringValue ?? String(decoding: line, as: UTF8.self)
            if message.hasPrefix("permission denied") && !receivedData {
                refusal = message
                return Outcome()
            }
            if awaitingSubscribeReply {
                return Outcome(failure: .init(description: message, exitCode: DaemonExitCode.usage.rawValue))
            }
            return Outcome(stderr: Array("wsrelay: \(message)\n".utf8))
        }
        if line.starts(with: Self.okPrefix) {
            awaitingSubscribeReply = false
            let names: [String]
            if case .array(let items)? = (try? MiniJSON.parse(line))?["upstreams"] {
                names = items.compactMap(\.stringValue)
            } else {
                names = []
            }
            return Outcome(stderr: Array("wsrelay tail: subscribed to \(names.joined(separator: ", "))\n".utf8))
        }
        let isEnvelope = line.starts(with: Self.envelopePrefix)
        let isEvent = line.starts(with: Self.eventPrefix)
        if (isEnvelope || isEvent) && (raw || !upstreams.isEmpty) {
            guard let value = try? MiniJSON.parse(line) else { return Outcome(stdout: Array(line) + [0x0A]) }
            // Until the daemon has applied the subscription, lines of other upstreams can still arrive.
            if !upstreams.isEmpty, let upstream = value["upstream"]?.stringValue, !upstreams.contains(upstream) {
                return Outcome()
            }
            receivedData = true
            if !raw { return Outcome(stdout: Array(line) + [0x0A]) }
            if isEvent { return Outcome(stderr: Array(line) + [0x0A]) }
            guard let data = value["data"]?.stringValue else { return Outcome(stdout: Array(line) + [0x0A]) }
            if value["type"]?.stringValue == "binary" {
                guard let bytes = Base64.decode(data.utf8) else { return Outcome(stdout: Array(line) + [0x0A]) }
                return Outcome(stdout: bytes + [0x0A])
            }
            return Outcome(stdout: Array(data.utf8) + [0x0A])
        }
        receivedData = true
        return Outcome(stdout: Array(line) + [0x0A])
    }

    static let errorPrefix = Array("{\"error\":".utf8)
    static let okPrefix = Array("{\"ok\":".utf8)
    static let envelopePrefix = Array("{\"upstream\":".utf8)
    static let eventPrefix = Array("{\"event\":".utf8)
}
