import NIOCore

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
