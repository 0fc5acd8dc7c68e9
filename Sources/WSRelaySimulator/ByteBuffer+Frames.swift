import NIOCore
import NIOWebSocket

extension ByteBuffer {
    /// Writes `value` as ASCII decimal digits without building a `String`: the flood writes one number (two
    /// with `stamp=1`) per message, and an allocation per message would make the simulator, not the client
    /// under test, the bottleneck.
    mutating func writeDecimal(_ value: UInt64) {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        writeWithUnsafeMutableBytes(minimumWritableBytes: digits) { pointer in
            var remaining = value
            for index in stride(from: digits - 1, through: 0, by: -1) {
                pointer[index] = UInt8(ascii: "0") + UInt8(remaining % 10)
                remaining /= 10
            }
            return digits
        }
    }
}

extension ByteBuffer {
    /// The header of a final, unmasked (server-to-client) frame, RFC 6455 section 5.2: what
    /// `WebSocketFrameEncoder` writes, so a batch of frames can skip it. `rsv1`: a compressed message.
    mutating func writeUnmaskedFrameHeader(opcode: WebSocketOpcode, length: Int, rsv1: Bool = false) {
        writeInteger(UInt8(0x80) | (rsv1 ? 0x40 : 0) | UInt8(webSocketOpcode: opcode))
        if length < 126 {
            writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            writeInteger(UInt8(126))
            writeInteger(UInt16(length))
        } else {
            writeInteger(UInt8(127))
            writeInteger(UInt64(length))
        }
    }
}
