import NIOCore
import NIOEmbedded
import NIOWebSocket
@testable import WSRelayCore

extension FuzzTargets {
    /// An arbitrary byte stream from an upstream after the upgrade: NIO's frame decoder in a channel pipeline
    /// as the connection sets it up, then `WebSocketMessageAssembler` (fragments, control frames, UTF-8, close
    /// payloads, size limit).
    ///
    /// Input: byte 0 picks the message size limit and byte 1 the read size (the stream arrives in reads of
    /// that many bytes, as TCP may split it anywhere); the rest is the stream.
    static let websocket = FuzzTarget(name: "websocket", summary: "WebSocketFrameDecoder + WebSocketMessageAssembler") { bytes in
        guard bytes.count >= 2 else { return }
        let limits = [0, 1, 16, 125, 126, 1000, 65536, 1 << 20]
        let maxMessageSize = limits[Int(bytes[0]) % limits.count]
        let readSize = max(1, Int(bytes[1]))
        let stream = bytes.dropFirst(2)

        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        let decoder = ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxMessageSize))
        guard (try? channel.pipeline.syncOperations.addHandler(decoder)) != nil else { return }
        var assembler = WebSocketMessageAssembler(maxMessageSize: maxMessageSize)
        var finished = false

        var offset = stream.startIndex
        while offset < stream.endIndex {
            let end = min(offset + readSize, stream.endIndex)
            var buffer = channel.allocator.buffer(capacity: end - offset)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: stream[offset..<end]))
            offset = end
            do {
                try channel.writeInbound(buffer)
            } catch {
                return  // a frame the decoder refuses: the connection closes, as with any protocol error
            }
            while let frame = try? channel.readInbound(as: WebSocketFrame.self) {
                let action = assembler.receive(frame)
                if finished {
                    guard case .none = action else { fatalError("fuzz property violated: action \(action) after the close") }
                    continue
                }
                switch action {
                case .none, .pong:
                    break
                case .replyPong(let payload):
                    check(payload.readableBytes <= 125, "pong reply of \(payload.readableBytes) bytes")
                case .message(let kind, let payload):
                    check(payload.readableBytes <= maxMessageSize, "message of \(payload.readableBytes) > \(maxMessageSize)")
                    if kind == .text {
                        check(String(validating: payload.readableBytesView, as: UTF8.self) != nil, "invalid UTF-8 text")
                    }
                case .peerClosed(let code, let reason):
                    if let code { check(CloseCode.isValidOnWire(code), "close code \(code) accepted") }
                    check(reason.utf8.count <= 123, "close reason of \(reason.utf8.count) bytes")
                    finished = true
                case .fail(let code, let reason):
                    check(CloseCode.isValidOnWire(code) && !reason.isEmpty, "fail \(code) \(reason)")
                    finished = true
                }
            }
        }
    }
}
