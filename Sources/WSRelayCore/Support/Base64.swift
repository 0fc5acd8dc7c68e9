/// Standard base64 (RFC 4648 §4, with `=` padding), table-driven, into and out of raw memory.
///
/// Binary payloads are encoded on the hot path, once per message; decoding is only used by `wsrelay tail --raw`.
enum Base64 {
    private static let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    @inline(__always)
    static func encodedSize(forInputSize n: Int) -> Int { ((n &+ 2) / 3) &* 4 }

    /// Returns the number of bytes written (always `encodedSize(forInputSize: input.count)`).
    static func encode(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) -> Int {
        let n = input.count
        guard n > 0, let base = input.baseAddress else { return 0 }
        let src = base.assumingMemoryBound(to: UInt8.self)
        let dst = out.assumingMemoryBound(to: UInt8.self)
        return alphabet.withUTF8Buffer { table in
            var i = 0
            var o = 0
            while i &+ 3 <= n {
                let v = UInt32(src[i]) << 16 | UInt32(src[i &+ 1]) << 8 | UInt32(src[i &+ 2])
                dst[o] = table[Int(v >> 18)]
                dst[o &+ 1] = table[Int((v >> 12) & 0x3F)]
                dst[o &+ 2] = table[Int((v >> 6) & 0x3F)]
                dst[o &+ 3] = table[Int(v & 0x3F)]
                i &+= 3
                o &+= 4
            }
            let rest = n &- i
            if rest == 1 {
                let v = UInt32(src[i]) << 16
                dst[o] = table[Int(v >> 18)]
                dst[o &+ 1] = table[Int((v >> 12) & 0x3F)]
                dst[o &+ 2] = UInt8(ascii: "=")
                dst[o &+ 3] = UInt8(ascii: "=")
                o &+= 4
            } else if rest == 2 {
                let v = UInt32(src[i]) << 16 | UInt32(src[i &+ 1]) << 8
                dst[o] = table[Int(v >> 18)]
                dst[o &+ 1] = table[Int((v >> 12) & 0x3F)]
                dst[o &+ 2] = table[Int((v >> 6) & 0x3F)]
                dst[o &+ 3] = UInt8(ascii: "=")
                o &+= 4
            }
            return o
        }
    }

    static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: encodedSize(forInputSize: bytes.count))
        let written = bytes.withUnsafeBytes { src in out.withUnsafeMutableBytes { encode(src, into: $0.baseAddress!) } }
        return String(decoding: out.prefix(written), as: UTF8.self)
    }

    /// Decodes standard base64; padding is optional, whitespace is not allowed. Nil on any invalid input.
    static func decode<S: Sequence<UInt8>>(_ input: S) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(input.underestimatedCount * 3 / 4 + 3)
        var accumulator: UInt32 = 0
        var bits = 0
        var padding = 0
        for c in input {
            let v: UInt32
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = UInt32(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = UInt32(c - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(c - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): v = 62
            case UInt8(ascii: "/"): v = 63
            case UInt8(ascii: "="): padding += 1; continue
            default: return nil
            }
            if padding > 0 { return nil }
            accumulator = (accumulator << 6) | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((accumulator >> UInt32(bits)) & 0xFF))
            }
        }
        if padding > 2 || bits >= 6 { return nil }
        return out
    }
}
