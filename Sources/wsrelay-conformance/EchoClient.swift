import NIOCore
import WSRelayCore

/// How one connection to the fuzzing server went.
struct SessionResult: Sendable {
    /// Text messages received (only kept when not echoing: `/getCaseCount`'s answer).
    var messages: [String] = []
    var summary: String = ""
    /// The case did not finish within the case timeout and was cut off.
    var timedOut = false
}

/// Runs connections to the fuzzing server one at a time, each on a fresh `UpstreamConnection` — the class the
/// daemon's upstream driver uses — with a hard time bound so a stuck case cannot hang CI.
struct EchoClient: Sendable {
    let loop: any EventLoop
    let base: WebSocketURL
    let maxMessageSize: Int
    let caseTimeout: Duration

    /// Connects to `path` (path plus query) and, when `echo` is set, sends every message back unchanged
    /// until the connection ends. Blocks the calling thread (never the event loop) until then.
    func run(path: String, echo: Bool) throws -> SessionResult {
        var options = UpstreamConnection.Options()
        options.connectTimeout = .seconds(10)
        options.handshakeTimeout = .seconds(10)
        options.maxMessageSize = maxMessageSize
        // Generous: the server closes TCP after the closing handshake; we only drop it if it never does.
        options.closeTimeout = .seconds(10)
        let url = WebSocketURL(secure: false, host: base.host, port: base.port, target: path)
        let promise = loop.makePromise(of: SessionResult.self)
        let timeout = caseTimeout
        loop.execute { [options] in
            let connection = UpstreamConnection(loop: loop, request: Self.request(url), tls: nil,
                                                serverName: nil, options: options)
            let session = EchoSession(echo: echo, promise: promise)
            connection.delegate = session
            session.armTimeout(connection, after: timeout)
            connection.start()
        }
        return try promise.futureResult.wait()
    }

    /// The daemon's permessage-deflate offer plus `client_no_context_takeover`: the echoes are compressed
    /// message by message (`EchoCompressor`), so the hint is true, and the fuzzing server's 13.x cases that
    /// ask for no context takeover accept only an offer that carries it.
    static func request(_ url: WebSocketURL) -> HandshakeRequest {
        var request = HandshakeRequest(url: url, compression: .auto)
        request.deflate.offer.clientNoContextTakeover = true
        return request
    }
}

/// The delegate of one connection. Confined to the connection's event loop.
// @unchecked Sendable: every mutable field (result, timer, done, echoed) is only touched on the connection's event loop.
final class EchoSession: UpstreamConnectionDelegate, @unchecked Sendable {
    private let echo: Bool
    private let promise: EventLoopPromise<SessionResult>
    private var result = SessionResult()
    private var timer: Scheduled<Void>?
    private var done = false
    private var echoed = 0
    /// Compresses the echoes when the server agreed to permessage-deflate, as Autobahn's reference clients do.
    private var compressor: EchoCompressor?

    init(echo: Bool, promise: EventLoopPromise<SessionResult>) {
        self.echo = echo
        self.promise = promise
    }

    func armTimeout(_ connection: UpstreamConnection, after timeout: Duration) {
        timer = connection.loop.scheduleTask(in: .nanoseconds(timeout.nanosecondsClamped)) { [self] in
            guard !done else { return }
            result.timedOut = true
            // Drops TCP (after a best-effort close frame); the connection then reports didClose/didFailToOpen.
            connection.abort(code: CloseCode.goingAway, reason: "case timeout")
            // Belt and braces: never wait more than a few seconds more for that report.
            _ = connection.loop.scheduleTask(in: .seconds(5)) { [self] in
                complete(connection, "timed out; no close reported")
            }
        }
    }

    func connectionDidOpen(_ connection: UpstreamConnection, subprotocol: String?) {
        compressor = connection.compression.flatMap(EchoCompressor.init)
    }

    func connection(_ connection: UpstreamConnection, didReceive messages: [InboundMessage]) {
        for message in messages {
            if echo {
                // Exactly as received: text as text, binary as binary, same bytes, one unfragmented frame.
                if let compressed = compressor?.compress(message.payload) {
                    connection.sendCompressed(kind: message.kind, payload: compressed)
                } else {
                    connection.send(kind: message.kind, payload: message.payload)
                }
                echoed += 1
            } else if message.kind == .text {
                result.messages.append(String(buffer: message.payload))
            }
        }
    }

    func connection(_ connection: UpstreamConnection, didReceivePong payload: ByteBuffer) {}

    func connection(_ connection: UpstreamConnection, didFailToOpen failure: ConnectionFailure) {
        complete(connection, "failed to open: \(failure)")
    }

    func connection(_ connection: UpstreamConnection, didClose info: ConnectionCloseInfo) {
        complete(connection, "\(info); echoed \(echoed) message(s)")
    }

    private func complete(_ connection: UpstreamConnection, _ summary: String) {
        guard !done else { return }
        done = true
        timer?.cancel()
        timer = nil
        connection.delegate = nil  // the connection holds its delegate strongly; break the cycle
        result.summary = result.timedOut ? "TIMED OUT: \(summary)" : summary
        promise.succeed(result)
    }
}
