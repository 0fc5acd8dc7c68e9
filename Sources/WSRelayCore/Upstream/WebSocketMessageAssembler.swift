import NIOCore
import NIOWebSocket

/// Turns WebSocket frames into complete messages and decides, per RFC 6455, what every frame obliges the
/// client to do.
///
/// A value-type state machine: frames in, one action out, no I/O. It is the single place where the
/// protocol's rules live — fragmentation, control-frame limits, reserved bits and opcodes, UTF-8 (checked
/// fragment by fragment so bad text fails fast), close-frame validity and the message size limit — and it is
/// what the Autobahn conformance cases exercise through the daemon's own connection code.
public struct WebSocketMessageAssembler: Sendable {
    public enum Action: Sendable {
        /// Nothing to do yet (a fragment was buffered).
        case none
        case message(ReceivedMessage.Kind, ByteBuffer)
        /// Answer with a pong carrying the same payload, at once.
        case replyPong(ByteBuffer)
        case pong(ByteBuffer)
        /// The peer started the closing handshake. `code` is nil when the frame had no status (1005).
        case peerClosed(code: UInt16?, reason: String)
        /// The peer broke the protocol: send a close frame with this code, then close the connection.
        case fail(code: UInt16, reason: String)
    }

    private enum State: Sendable {
        case idle
        case fragmented(kind: ReceivedMessage.Kind, buffer: ByteBuffer, utf8: UTF8StreamValidator)
        case closed
    }

    public let maxMessageSize: Int
    private var state: State = .idle

    public init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    public mutating func receive(_ frame: WebSocketFrame) -> Action {
        if case .closed = state { return .none }
        if frame.rsv1 || frame.rsv2 || frame.rsv3 {
            return fail(CloseCode.protocolError, "reserved bit set without a negotiated extension")
        }
        if frame.maskKey != nil {
            return fail(CloseCode.protocolError, "server sent a masked frame")
        }
        switch frame.opcode {
        case .ping:
            guard frame.fin else { return fail(CloseCode.protocolError, "fragmented control frame") }
            return .replyPong(frame.unmaskedData)
        case .pong:
            guard frame.fin else { return fail(CloseCode.protocolError, "fragmented control frame") }
            return .pong(frame.unmaskedData)
        case .connectionClose:
            guard frame.fin else { return fail(CloseCode.protocolError, "fragmented control frame") }
            return receiveClose(frame.unmaskedData)
        case .text, .binary:
            if case .fragmented = state {
                return fail(CloseCode.protocolError, "new data frame while a fragmented message is open")
            }
            return startMessage(frame.opcode == .text ? .text : .binary, frame)
        case .continuation:
            return continueMessage(frame)
        default:
            return fail(CloseCode.protocolError, "reserved opcode \(frame.opcode)")
        }
    }

    private mutating func startMessage(_ kind: ReceivedMessage.Kind, _ frame: WebSocketFrame) -> Action {
        let data = frame.unmaskedData
        guard data.readableBytes <= maxMessageSize else { return tooBig(data.readableBytes) }
        var utf8 = UTF8StreamValidator()
        if kind == .text {
            let valid = data.withUnsafeReadableBytes { utf8.consume($0) }
            guard valid else { return fail(CloseCode.invalidPayload, "text message is not valid UTF-8") }
        }
        if frame.fin {
            if kind == .text && !utf8.isComplete {
                return fail(CloseCode.invalidPayload, "text message ends inside a UTF-8 sequence")
            }
            return .message(kind, data)
        }
        state = .fragmented(kind: kind, buffer: data, utf8: utf8)
        return .none
    }

    private mutating func continueMessage(_ frame: WebSocketFrame) -> Action {
        guard case .fragmented(let kind, var buffer, var utf8) = state else {
            return fail(CloseCode.protocolError, "continuation frame without a message to continue")
        }
        state = .idle  // drop our reference so `buffer` is uniquely owned and appends do not copy
        var data = frame.unmaskedData
        let total = buffer.readableBytes + data.readableBytes
        guard total <= maxMessageSize else { return tooBig(total) }
        if kind == .text {
            let valid = data.withUnsafeReadableBytes { utf8.consume($0) }
            guard valid else { return fail(CloseCode.invalidPayload, "text message is not valid UTF-8") }
        }
        buffer.writeBuffer(&data)
        if frame.fin {
            if kind == .text && !utf8.isComplete {
                return fail(CloseCode.invalidPayload, "text message ends inside a UTF-8 sequence")
            }
            return .message(kind, buffer)
        }
        state = .fragmented(kind: kind, buffer: buffer, utf8: utf8)
        return .none
    }

    private mutating func receiveClose(_ payload: ByteBuffer) -> Action {
        var payload = payload
        if payload.readableBytes == 0 {
            state = .closed
            return .peerClosed(code: nil, reason: "")
        }
        guard payload.readableBytes >= 2, let code = payload.readInteger(as: UInt16.self) else {
            return fail(CloseCode.protocolError, "close frame with a 1-byte payload")
        }
        guard CloseCode.isValidOnWire(code) else {
            return fail(CloseCode.protocolError, "invalid close code \(code)")
        }
        var utf8 = UTF8StreamValidator()
        let valid = payload.withUnsafeReadableBytes { utf8.consume($0) }
        guard valid, utf8.isComplete else {
            return fail(CloseCode.invalidPayload, "close reason is not valid UTF-8")
        }
        state = .closed
        return .peerClosed(code: code, reason: payload.readString(length: payload.readableBytes) ?? "")
    }

    private mutating func tooBig(_ size: Int) -> Action {
        fail(CloseCode.messageTooBig, "message of at least \(size) bytes exceeds max_message_size \(maxMessageSize)")
    }

    private mutating func fail(_ code: UInt16, _ reason: String) -> Action {
        state = .closed
        return .fail(code: code, reason: reason)
    }
}
