import Crypto
import NIOCore
import NIOPosix
import NIOWebSocket
import Testing
@testable import WSRelayCore

/// The RFC 6455 rules the Autobahn|Testsuite client cases check (scripts/conformance runs the real suite),
/// pinned down as unit tests, plus regressions for what the suite found.
@Suite("WebSocketMessageAssembler")
struct WebSocketMessageAssemblerTests {
    private func frame(_ opcode: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true, rsv1: Bool = false) -> WebSocketFrame {
        WebSocketFrame(fin: fin, rsv1: rsv1, opcode: opcode, data: ByteBuffer(bytes: bytes))
    }

    private func text(_ s: String, fin: Bool = true) -> WebSocketFrame { frame(.text, Array(s.utf8), fin: fin) }

    /// A comparable rendering of an action.
    private func render(_ action: WebSocketMessageAssembler.Action) -> String {
        switch action {
        case .none: return "none"
        case .message(let kind, let payload): return "message \(kind) \(Array(payload.readableBytesView))"
        case .replyPong(let payload): return "replyPong \(Array(payload.readableBytesView))"
        case .pong(let payload): return "pong \(Array(payload.readableBytesView))"
        case .peerClosed(let code, let reason): return "peerClosed \(code.map(String.init) ?? "nil") \(reason)"
        case .fail(let code, _): return "fail \(code)"
        }
    }

    private func feed(_ frames: [WebSocketFrame], max: Int = 1024) -> [String] {
        var assembler = WebSocketMessageAssembler(maxMessageSize: max)
        return frames.map { render(assembler.receive($0)) }
    }

    @Test func pingIsAnsweredWithTheSamePayloadEvenInsideAFragmentedMessage() {
        #expect(feed([text("Hel", fin: false), frame(.ping, [1, 2, 3]), frame(.continuation, Array("lo".utf8))])
                == ["none", "replyPong [1, 2, 3]", "message text \(Array("Hello".utf8))"])
    }

    @Test func fragmentedControlFramesReservedBitsAndOpcodesAreProtocolErrors() {
        #expect(feed([frame(.ping, [], fin: false)]) == ["fail 1002"])
        #expect(feed([text("x", fin: true).withRSV1()]) == ["fail 1002"])
        #expect(feed([frame(WebSocketOpcode(encodedWebSocketOpcode: 3)!, [])]) == ["fail 1002"])
        #expect(feed([frame(WebSocketOpcode(encodedWebSocketOpcode: 11)!, [])]) == ["fail 1002"])
        #expect(feed([frame(.continuation, [1])]) == ["fail 1002"])
        #expect(feed([text("a", fin: false), text("b")]) == ["none", "fail 1002"])
        // After failing, nothing more is acted on.
        #expect(feed([frame(.continuation, [1]), frame(.ping, [1])]) == ["fail 1002", "none"])
    }

    @Test func invalidUTF8FailsAtTheFirstFragmentThatCanNeverBeValid() {
        // κόσμε then 0xED 0xA0 0x80 (a UTF-16 surrogate): fails on the second fragment, before the message ends.
        let good: [UInt8] = [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5]
        #expect(feed([frame(.text, good, fin: false), frame(.continuation, [0xED, 0xA0, 0x80], fin: false),
                      frame(.continuation, [0x41])]) == ["none", "fail 1007", "none"])
        // A code point split across fragments is fine; one left unfinished at the end is not.
        #expect(feed([frame(.text, [0xCE], fin: false), frame(.continuation, [0xBA])]) == ["none", "message text [206, 186]"])
        #expect(feed([frame(.text, [0x41, 0xCE])]) == ["fail 1007"])
        // Binary messages are not validated.
        #expect(feed([frame(.binary, [0xFF])]) == ["message binary [255]"])
    }

    @Test func closeFramesAreValidated() {
        #expect(feed([frame(.connectionClose, [])]) == ["peerClosed nil "])
        #expect(feed([frame(.connectionClose, [0x03, 0xE8] + Array("bye".utf8))]) == ["peerClosed 1000 bye"])
        #expect(feed([frame(.connectionClose, [0x03])]) == ["fail 1002"])
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            #expect(feed([frame(.connectionClose, [UInt8(code >> 8), UInt8(code & 0xFF)])]) == ["fail 1002"], "code \(code)")
        }
        for code: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999] {
            #expect(feed([frame(.connectionClose, [UInt8(code >> 8), UInt8(code & 0xFF)])]) == ["peerClosed \(code) "], "code \(code)")
        }
        #expect(feed([frame(.connectionClose, [0x03, 0xE8, 0xCE, 0xBA, 0xED, 0xA0, 0x80])]) == ["fail 1007"])
    }

    @Test func messagesOverTheLimitFailWith1009() {
        #expect(feed([frame(.binary, [UInt8](repeating: 0, count: 11))], max: 10) == ["fail 1009"])
        #expect(feed([frame(.binary, [UInt8](repeating: 0, count: 6), fin: false), frame(.continuation, [UInt8](repeating: 0, count: 6))], max: 10)
                == ["none", "fail 1009"])
    }
}

private extension WebSocketFrame {
    func withRSV1() -> WebSocketFrame {
        var copy = self
        copy.rsv1 = true
        return copy
    }
}

/// Regression (found by Autobahn's `/getCaseCount`): a server that sends its 101 response, frames and FIN in
/// one burst. NIO dropped the bytes after the 101 when EOF arrived before its HTTP decoder was removed, so
/// the message was lost and a clean close looked like a 1006 drop. `DeferredInactiveHandler` fixes it.
@Suite("UpstreamConnection burst after 101")
struct UpstreamConnectionBurstTests {
    /// Answers the upgrade with one write holding the 101, a text frame "27" and a close frame 1000, then
    /// closes TCP at once.
    // @unchecked Sendable: `request` is only touched on the channel's event loop.
    final class BurstServerHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        private var request = ""

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            request += buffer.readString(length: buffer.readableBytes) ?? ""
            guard request.contains("\r\n\r\n") else { return }
            let keyLine = request.split(separator: "\r\n").first { $0.lowercased().hasPrefix("sec-websocket-key:") }
            let key = keyLine.map { String($0.dropFirst("sec-websocket-key:".count).filter { $0 != " " && $0 != "\t" }) } ?? ""
            let digest = Insecure.SHA1.hash(data: Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))
            let accept = Base64.encode(Array(digest))
            var out = context.channel.allocator.buffer(capacity: 256)
            out.writeString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            + "Sec-WebSocket-Accept: \(accept)\r\n\r\n")
            out.writeBytes([0x81, 0x02, 0x32, 0x37, 0x88, 0x02, 0x03, 0xE8])
            context.writeAndFlush(NIOAny(out), promise: nil)
            context.close(promise: nil)
        }
    }

    // @unchecked Sendable: `messages` is only touched on the connection's event loop; `done` is a promise.
    final class Recorder: UpstreamConnectionDelegate, @unchecked Sendable {
        let done: EventLoopPromise<(messages: [String], close: ConnectionCloseInfo?)>
        var messages: [String] = []
        init(done: EventLoopPromise<(messages: [String], close: ConnectionCloseInfo?)>) { self.done = done }
        func connectionDidOpen(_ connection: UpstreamConnection, subprotocol: String?) {}
        func connection(_ connection: UpstreamConnection, didReceive messages: [InboundMessage]) {
            self.messages += messages.map { String(buffer: $0.payload) }
        }
        func connection(_ connection: UpstreamConnection, didReceivePong payload: ByteBuffer) {}
        func connection(_ connection: UpstreamConnection, didFailToOpen failure: ConnectionFailure) {
            connection.delegate = nil
            done.succeed((messages, nil))
        }
        func connection(_ connection: UpstreamConnection, didClose info: ConnectionCloseInfo) {
            connection.delegate = nil
            done.succeed((messages, info))
        }
    }

    @Test func framesSentWithThe101AndFollowedByEOFAreDelivered() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(BurstServerHandler()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = server.localAddress!.port!
        // The data and the FIN must reach the client in one read burst; repeat so a lucky wake-up between
        // the two cannot hide a regression.
        for attempt in 1...20 {
            let loop = group.next()
            let done = loop.makePromise(of: (messages: [String], close: ConnectionCloseInfo?).self)
            let url = WebSocketURL(secure: false, host: "127.0.0.1", port: port, target: "/getCaseCount")
            try await loop.submit {
                let connection = UpstreamConnection(loop: loop, request: HandshakeRequest(url: url), tls: nil,
                                                    serverName: nil, options: .init())
                connection.delegate = Recorder(done: done)
                connection.start()
            }.get()
            let (messages, close) = try await done.futureResult.get()
            #expect(messages == ["27"], "attempt \(attempt)")
            #expect(close?.code == CloseCode.normal && close?.initiator == .peer, "attempt \(attempt): \(String(describing: close))")
        }
        try await server.close()
        try await group.shutdownGracefully()
    }
}
