import Crypto
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing
@testable import WSRelayCore

/// `UpstreamConnection` and its channel handlers on an `EmbeddedChannel`: the real pipeline (HTTP upgrade,
/// frame codec, frame handler, state machine), bytes in and out, time advanced by hand. The real-socket
/// tests (`UpstreamConnectionBurstTests`, the integration suite, Autobahn) cover the same code over TCP.
@Suite("UpstreamConnection in memory")
struct UpstreamConnectionInMemoryTests {
    /// What the connection told its delegate, in order.
    // @unchecked Sendable: only touched on the embedded loop, which is the test's own thread.
    final class Recorder: UpstreamConnectionDelegate, @unchecked Sendable {
        var events: [String] = []
        func connectionDidOpen(_ connection: UpstreamConnection, subprotocol: String?) { events.append("open") }
        func connection(_ connection: UpstreamConnection, didReceive messages: [InboundMessage]) {
            events.append("messages " + messages.map { String(buffer: $0.payload) }.joined(separator: ","))
        }
        func connection(_ connection: UpstreamConnection, didReceivePong payload: ByteBuffer) {
            events.append("pong " + String(buffer: payload))
        }
        func connection(_ connection: UpstreamConnection, didFailToOpen failure: ConnectionFailure) {
            events.append("failed \(failure)")
        }
        func connection(_ connection: UpstreamConnection, didClose info: ConnectionCloseInfo) {
            events.append("closed \(info)")
        }
    }

    /// A frame the client wrote, unmasked.
    struct ClientFrame: Equatable, CustomStringConvertible {
        var opcode: UInt8
        var payload: [UInt8]
        var description: String { "opcode \(opcode) \(payload)" }

        static func close(_ code: UInt16, _ reason: String = "") -> ClientFrame {
            ClientFrame(opcode: 0x8, payload: [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8))
        }
    }

    let channel = EmbeddedChannel()
    let recorder = Recorder()
    let connection: UpstreamConnection

    init() throws {
        var options = UpstreamConnection.Options()
        options.connectTimeout = .seconds(3)
        options.handshakeTimeout = .seconds(4)
        options.closeTimeout = .seconds(2)
        let url = WebSocketURL(secure: false, host: "127.0.0.1", port: 9, target: "/feed")
        connection = UpstreamConnection(loop: channel.eventLoop, request: HandshakeRequest(url: url), tls: nil,
                                        serverName: nil, options: options)
        connection.delegate = recorder
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        try connection.start(on: channel)
    }

    // MARK: - Wire helpers

    /// Everything the client wrote since the last call, as one string (the HTTP request).
    private func outboundText() throws -> String {
        var text = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { text += String(buffer: buffer) }
        }
        return text
    }

    /// The frames the client wrote since the last call.
    private func outboundFrames() throws -> [ClientFrame] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        var frames: [ClientFrame] = []
        var index = 0
        while index + 6 <= bytes.count {
            let opcode = bytes[index] & 0x0F
            #expect(bytes[index + 1] & 0x80 != 0, "client frames are masked")
            let length = Int(bytes[index + 1] & 0x7F)  // the tests' frames are all short
            let mask = Array(bytes[(index + 2)..<(index + 6)])
            let payload = bytes[(index + 6)..<(index + 6 + length)].enumerated().map { $1 ^ mask[$0 % 4] }
            frames.append(ClientFrame(opcode: opcode, payload: payload))
            index += 6 + length
        }
        return frames
    }

    private func serverFrame(_ opcode: UInt8, _ payload: [UInt8], masked: Bool = false) -> [UInt8] {
        precondition(payload.count < 126)
        if masked { return [0x80 | opcode, 0x80 | UInt8(payload.count), 0, 0, 0, 0] + payload }
        return [0x80 | opcode, UInt8(payload.count)] + payload
    }

    private func serverClose(_ code: UInt16) -> [UInt8] {
        serverFrame(0x8, [UInt8(code >> 8), UInt8(code & 0xFF)])
    }

    private func receive(_ bytes: [UInt8]) throws {
        try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
        channel.embeddedEventLoop.run()
    }

    /// Answers the upgrade request with a valid 101, followed in the same read by `after`.
    private func acceptUpgrade(then after: [UInt8] = []) throws {
        let request = try outboundText()
        #expect(request.hasPrefix("GET /feed HTTP/1.1\r\n"))
        let keyLine = request.split(separator: "\r\n").first { $0.lowercased().hasPrefix("sec-websocket-key:") }
        let key = keyLine.map { String($0.dropFirst("sec-websocket-key:".count).filter { $0 != " " && $0 != "\t" }) } ?? ""
        let accept = Base64.encode(Array(Insecure.SHA1.hash(data: Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))))
        let response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: \(accept)\r\n\r\n"
        try receive(Array(response.utf8) + after)
    }

    // MARK: - Tests

    @Test func theServersCloseIsAnsweredAndMessagesBeforeItAreDelivered() throws {
        try acceptUpgrade(then: serverFrame(0x1, Array("hello".utf8)) + serverClose(4000))
        #expect(recorder.events == ["open", "messages hello"])
        #expect(try outboundFrames() == [.close(4000)], "answered with the server's code")
        // The server closes TCP after our answer.
        try channel.close().wait()
        channel.embeddedEventLoop.run()
        #expect(recorder.events == ["open", "messages hello", "closed server closed (4000)"])
    }

    @Test func ourCloseDeliversTheBacklogAndDropsTCPWhenTheServerNeverAnswers() throws {
        try acceptUpgrade()
        connection.close(code: CloseCode.goingAway, reason: "going away")
        #expect(try outboundFrames() == [.close(1001, "going away")])
        try receive(serverFrame(0x1, Array("late".utf8)))
        #expect(recorder.events == ["open", "messages late"], "sent before the server saw our close")
        connection.send(.text("refused"))
        #expect(try outboundFrames().isEmpty, "nothing is sent after our close frame")
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive, "TCP closed at the close timeout")
        channel.embeddedEventLoop.run()
        #expect(recorder.events.last == "closed closed by wsrelay (1001 going away)")
    }

    @Test func pingsArePongedAndPongsReported() throws {
        try acceptUpgrade(then: serverFrame(0x9, [7, 8]) + serverFrame(0xA, Array("p1".utf8)))
        #expect(try outboundFrames() == [ClientFrame(opcode: 0xA, payload: [7, 8])])
        #expect(recorder.events == ["open", "pong p1"])
        connection.send(.binary([1, 2, 3]))
        connection.sendPing([9])
        #expect(try outboundFrames() == [ClientFrame(opcode: 0x2, payload: [1, 2, 3]), ClientFrame(opcode: 0x9, payload: [9])])
    }

    @Test func aMaskedServerFrameFailsTheConnectionAtOnce() throws {
        try acceptUpgrade(then: serverFrame(0x1, Array("ok".utf8)) + serverFrame(0x1, Array("x".utf8), masked: true))
        #expect(try outboundFrames() == [.close(1002, "server sent a masked frame")])
        #expect(!channel.isActive, "no waiting for a peer that broke the protocol")
        channel.embeddedEventLoop.run()
        #expect(recorder.events == ["open", "messages ok", "closed protocol error (1002 server sent a masked frame)"])
    }

    @Test func aRejectedUpgradeIsAFailureToOpenWithItsStatus() throws {
        _ = try outboundText()
        try receive(Array("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".utf8))
        #expect(recorder.events == ["failed HTTP 401 Unauthorized"])
        #expect(!channel.isActive)
    }

    @Test func noUpgradeAnswerFailsAtTheHandshakeTimeout() throws {
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(recorder.events.isEmpty, "the handshake timeout replaced the connect timeout")
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(recorder.events == ["failed handshake: no upgrade response within 4.0 seconds"])
        #expect(!channel.isActive)
    }
}
