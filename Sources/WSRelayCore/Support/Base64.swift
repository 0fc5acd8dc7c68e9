import ExtrasBase64

/// Standard base64 (RFC 4648 §4, with `=` padding).
///
/// Everything off the hot path is swift-extras-base64's. Only the envelope encoder's per-message encoding of
/// binary payloads straight into the line's memory stays hand-written, because the library costs more there
/// (bench/micro --instructions, release build, bench/RESULTS.md "Hot-path helpers"): 957 vs 1,074
/// instructions per 100-byte payload (+12 %), 38,253 vs 41,034 per 4 KiB payload (+7 %); Foundation's
/// `Data.base64EncodedData` 3,318 and 50,207.
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
        ExtrasBase64.Base64.encodeToString(bytes: bytes)
    }

    /// Decodes standard base64; padding is optional, whitespace is not allowed. Nil on any invalid input.
    static func decode<S: Sequence<UInt8>>(_ input: S) -> [UInt8]? {
        let bytes = Array(input)
        let options: ExtrasBase64.Base64.DecodingOptions = bytes.count % 4 == 0 ? [] : [.omitPaddingCharacter]
        return try? ExtrasBase64.Base64.decode(bytes: bytes, options: options)
    }
}
