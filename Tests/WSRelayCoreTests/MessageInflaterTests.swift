import CompressNIO
import NIOCore
import NIOWebSocket
import Testing
@testable import WSRelayCore

/// Compressed messages through `InboundMessageDecoder` (inflater + assembler), compressed by zlib the way a
/// server does it (raw DEFLATE, sync flush, the `00 00 ff ff` tail removed: RFC 7692 §7.2.1).
@Suite("MessageInflater")
struct MessageInflaterTests {
    /// A server's compressor: one per connection (context takeover) or reset per message.
    final class ServerCompressor {
        let zlib: ZlibCompressor
        init(windowBits: Int32 = 15) throws {
            zlib = try ZlibCompressor(algorithm: .deflate, configuration: .init(windowSize: windowBits))
        }

        /// One message's compressed payload; `final` ends the DEFLATE stream with a BFINAL block instead.
        func compress(_ bytes: [UInt8], final: Bool = false) throws -> [UInt8] {
            var input = ByteBuffer(bytes: bytes)
            var output = ByteBuffer()
            output.reserveCapacity(zlib.maxSize(from: input) + 64)
            do {
                try zlib.deflate(from: &input, to: &output, flush: final ? .finish : .sync)
            } catch let error as CompressNIOError where error == .bufferOverflow && !final {
                Issue.record("output buffer too small")
            }
            var out = Array(output.readableBytesView)
            if !final {
                try #require(out.suffix(4) == [0, 0, 0xff, 0xff])
                out.removeLast(4)
            }
            return out
        }
    }

    private func frames(_ opcode: WebSocketOpcode, _ payload: [UInt8], chunk: Int? = nil, compressed: Bool = true) -> [WebSocketFrame] {
        let size = max(1, chunk ?? payload.count)
        var pieces = stride(from: 0, to: payload.count, by: size).map { Array(payload[$0..<min($0 + size, payload.count)]) }
        if pieces.isEmpty { pieces = [[]] }
        return pieces.enumerated().map { index, piece in
            WebSocketFrame(fin: index == pieces.count - 1, rsv1: compressed && index == 0,
                           opcode: index == 0 ? opcode : .continuation, data: ByteBuffer(bytes: piece))
        }
    }

    private func render(_ action: WebSocketMessageAssembler.Action) -> String {
        switch action {
        case .none: return "none"
        case .message(let kind, let payload): return "\(kind) \(String(buffer: payload))"
        case .replyPong: return "replyPong"
        case .pong: return "pong"
        case .peerClosed(let code, _): return "peerClosed \(code.map(String.init) ?? "nil")"
        case .fail(let code, let reason): return "fail \(code) \(reason)"
        }
    }

    /// The actions that are not `.none`.
    private func feed(_ decoder: inout InboundMessageDecoder, _ frames: [WebSocketFrame]) -> [String] {
        frames.map { render(decoder.receive($0)) }.filter { $0 != "none" }
    }

    private func json(_ i: Int) -> String {
        #"{"type":"trade","symbol":"BTC-USD","price":"\#(40000 + i).5","size":"0.01","side":"buy","seq":\#(i)}"#
    }

    @Test func messagesInflateWithContextTakeoverAcrossMessagesAndFragments() throws {
        var decoder = try InboundMessageDecoder(maxMessageSize: 1 << 20, compression: .init())
        let server = try ServerCompressor()
        var out: [String] = []
        for i in 0..<50 {
            // The same compressor throughout: later messages refer back into earlier ones.
            let compressed = try server.compress(Array(json(i).utf8))
            out += feed(&decoder, frames(.text, compressed, chunk: i % 2 == 0 ? nil : 7))
        }
        #expect(out == (0..<50).map { "text \(json($0))" })
        let stats = try #require(decoder.inflater?.stats)
        #expect(stats.messages == 50)
        #expect(stats.inflatedBytes == UInt64((0..<50).map { json($0).utf8.count }.reduce(0, +)))
        #expect(stats.ratio.map { $0 > 2 } == true, "\(stats)")
    }

    @Test(arguments: Array(8...15))
    func everyServerWindowSizeInflates(bits: Int) throws {
        let parameters = PerMessageDeflateParameters(serverMaxWindowBits: bits)
        var decoder = try InboundMessageDecoder(maxMessageSize: 1 << 20, compression: parameters)
        let server = try ServerCompressor(windowBits: Int32(max(9, bits)))
        // Repetition at distances beyond small windows.
        let message = (0..<200).map { json($0 % 37) }.joined()
        let compressed = try server.compress(Array(message.utf8))
        #expect(feed(&decoder, frames(.text, compressed)) == ["text \(message)"])
    }

    @Test func serverNoContextTakeoverResetsTheInflaterAfterEachMessage() throws {
        var decoder = try InboundMessageDecoder(maxMessageSize: 1 << 20, compression: .init(serverNoContextTakeover: true))
        var out: [String] = []
        for i in 0..<5 {
            let server = try ServerCompressor()  // a fresh context per message, as the server promised
            out += feed(&decoder, frames(.binary, try server.compress(Array(json(i).utf8)), chunk: 5))
        }
        #expect(out == (0..<5).map { "binary \(json($0))" })
    }

    @Test func aStreamEndedWithBFINALIsFollowedByANewStream() throws {
        var decoder = try InboundMessageDecoder(maxMessageSize: 1 << 20, compression: .init())
        let first = try ServerCompressor().compress(Array(json(1).utf8), final: true)
        let second = try ServerCompressor().compress(Array(json(2).utf8), final: true)
        #expect(feed(&decoder, frames(.text, first)) == ["text \(json(1))"])
        #expect(feed(&decoder, frames(.text, second, chunk: 3)) == ["text \(json(2))"])
    }

    @Test func uncompressedMessagesAndControlFramesPassOnACompressedConnection() throws {
        var decoder = try InboundMessageDecoder(maxMessageSize: 1 << 20, compression: .init())
        let server = try ServerCompressor()
        var out = feed(&decoder, frames(.text, Array("plain".utf8), chunk: 2, compressed: false))
        out += feed(&decoder, [WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(bytes: [1]))])
        out += feed(&decoder, frames(.text, try server.compress(Array("squeezed".utf8))))
        // An empty compressed message: the single byte 00 (RFC 7692 §7.2.3.6).
        out += feed(&decoder, frames(.text, [0x00]))
        #expect(out == ["text plain", "replyPong", "text squeezed", "text "])
    }

    @Test func rsv1AnywhereButTheFirstFrameOfAMessageIsAProtocolError() throws {
        let server = try ServerCompressor()
        var decoder = try InboundMessageDecoder(maxMessageSize: 1 << 20, compression: .init())
        var continued = frames(.text, try server.compress(Array(json(1).utf8)), chunk: 4)
        continued[1].rsv1 = true
        #expect(feed(&decoder, continued).first == "fail 1002 RSV1 set on a continuation frame")

        decoder = try InboundMessageDecoder(maxMessageSize: 1 << 20, compression: .init())
        #expect(feed(&decoder, [WebSocketFrame(fin: true, rsv1: true, opcode: .ping, data: ByteBuffer())])
                == ["fail 1002 RSV1 set on a control frame"])

        // Other reserved bits stay reserved.
        decoder = try InboundMessageDecoder(maxMessageSize: 1 << 20, compression: .init())
        var rsv2 = frames(.text, try ServerCompressor().compress(Array("x".utf8)))
        rsv2[0].rsv2 = true
        #expect(feed(&decoder, rsv2).first?.hasPrefix("fail 1002") == true)

        // Without the extension RSV1 is what it always was.
        decoder = try InboundMessageDecoder(maxMessageSize: 1 << 20, compression: nil)
        #expect(feed(&decoder, frames(.text, [0x00])).first?.hasPrefix("fail 1002 reserved bit") == true)
    }

    @Test func corruptDataAndInvalidTextFailWith1007() throws {
        var decoder = try InboundMessageDecoder(maxMessageSize: 1 << 20, compression: .init())
        // BTYPE 11 is reserved: not DEFLATE.
        #expect(feed(&decoder, frames(.binary, [0xff, 0xff, 0xff])).first?.hasPrefix("fail 1007 invalid compressed data") == true)

        decoder = try InboundMessageDecoder(maxMessageSize: 1 << 20, compression: .init())
        let badText = try ServerCompressor().compress([0x48, 0xc3, 0x28])
        #expect(feed(&decoder, frames(.text, badText)).first?.hasPrefix("fail 1007") == true)
        // Nothing after a failure is delivered.
        #expect(feed(&decoder, frames(.text, try ServerCompressor().compress(Array("late".utf8)))).isEmpty)
    }

    /// A ~1 KiB frame that inflates to 1 GiB is stopped at max_message_size, having inflated little more
    /// than the limit.
    @Test func aCompressionBombStopsAtTheLimitWith1009() throws {
        let server = try ServerCompressor()
        // 1 GiB of zeros compresses to about 1 MiB; feeding 1 KiB-sized frames of it is the bomb.
        var bomb: [UInt8] = []
        let block = [UInt8](repeating: 0, count: 1 << 20)
        for _ in 0..<2 { bomb += try server.compress(block) }  // 2 MiB of zeros, ~2 KiB compressed
        #expect(bomb.count < 8 << 10)

        var decoder = try InboundMessageDecoder(maxMessageSize: 64 << 10, compression: .init())
        let result = feed(&decoder, frames(.binary, bomb, chunk: 1024))
        #expect(result == ["fail 1009 compressed message inflates past max_message_size 65536"])
        let stats = try #require(decoder.inflater?.stats)
        // Stopped at the limit: at most the limit plus one growth step was ever inflated.
        #expect(stats.inflatedBytes <= 2 * (64 << 10), "\(stats)")
        #expect(stats.messages == 0)

        // A bomb in one single frame stops the same way.
        decoder = try InboundMessageDecoder(maxMessageSize: 64 << 10, compression: .init())
        #expect(feed(&decoder, frames(.binary, bomb)) == ["fail 1009 compressed message inflates past max_message_size 65536"])
        #expect(try #require(decoder.inflater?.stats).inflatedBytes <= 2 * (64 << 10))
    }

    @Test func aMessageExactlyAtTheLimitIsDelivered() throws {
        let limit = 10_000
        var decoder = try InboundMessageDecoder(maxMessageSize: limit, compression: .init())
        let server = try ServerCompressor()
        let exact = [UInt8](repeating: UInt8(ascii: "a"), count: limit)
        #expect(feed(&decoder, frames(.text, try server.compress(exact), chunk: 3)) == ["text " + String(repeating: "a", count: limit)])
        #expect(feed(&decoder, frames(.text, try server.compress(exact + [UInt8(ascii: "a")])))
                == ["fail 1009 compressed message inflates past max_message_size 10000"])
    }
}
