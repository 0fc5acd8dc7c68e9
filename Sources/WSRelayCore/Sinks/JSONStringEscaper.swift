/// Writes bytes as the inside of a JSON string (no surrounding quotes), straight into raw memory.
///
/// - `"` and `\` are escaped; `\b \f \n \r \t` get their short escapes; other control characters
///   (U+0000–U+001F) become `\u00XX`. Everything else is copied as is (including U+007F and U+2028/9,
///   which JSON allows).
/// - Input is validated as UTF-8 on the way (WebSocket text must be UTF-8, but a sink must never write a
///   line that is not valid JSON): every byte that does not start a well-formed sequence is written as
///   `\ufffd`, and writing continues with the next byte.
///
/// The caller reserves `maximumOutputSize(forInputSize:)` bytes; ASCII runs are checked eight bytes at a
/// time, so the common case (JSON text in JSON) is close to a memcpy.
///
/// Hand-written because it is on the hot path (every text message of every envelope) and the library costs
/// more there (bench/micro --instructions, release build; bench/RESULTS.md "Hot-path helpers"): 2,588
/// instructions per 100-byte JSON payload against 13,399 for Foundation's `JSONEncoder` (5.2x; it also needs a
/// `String` first and returns a new `Data` instead of writing into the line), 99,973 against 216,431 per 4 KiB
/// (2.2x). Foundation has no escaper that writes into caller memory.
enum JSONStringEscaper {
    /// Worst case: every byte becomes a six-byte escape (`\u0001` or `\ufffd`).
    @inline(__always)
    static func maximumOutputSize(forInputSize n: Int) -> Int { n &* 6 }

    private static let hex: StaticString = "0123456789abcdef"

    /// Returns the number of bytes written to `out`.
    static func escape(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) -> Int {
        guard let base = input.baseAddress, input.count > 0 else { return 0 }
        let src = base.assumingMemoryBound(to: UInt8.self)
        let dst = out.assumingMemoryBound(to: UInt8.self)
        let n = input.count
        var i = 0
        var o = 0
        while i < n {
            // Eight clean bytes at a time: no byte < 0x20, >= 0x80, '"' or '\'.
            while i &+ 8 <= n {
                let word = UnsafeRawPointer(src + i).loadUnaligned(as: UInt64.self)
                if !isCleanWord(word) { break }
                UnsafeMutableRawPointer(dst + o).storeBytes(of: word, as: UInt64.self)
                i &+= 8
                o &+= 8
            }
            if i >= n { break }
            let b = src[i]
            if b >= 0x20 && b < 0x80 {
                if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                    dst[o] = UInt8(ascii: "\\"); dst[o &+ 1] = b; o &+= 2
                } else {
                    dst[o] = b; o &+= 1
                }
                i &+= 1
            } else if b < 0x20 {
                o &+= writeControl(b, to: dst + o)
                i &+= 1
            } else {
                let length = validSequenceLength(src + i, remaining: n &- i)
                if length == 0 {
                    o &+= writeReplacement(to: dst + o)
                    i &+= 1
                } else {
                    for k in 0..<length { dst[o &+ k] = src[i &+ k] }
                    o &+= length
                    i &+= length
                }
            }
        }
        return o
    }

    /// Escapes a Swift string (always valid UTF-8) into `bytes`; for the rare, small strings of event records.
    static func append(_ string: String, to bytes: inout [UInt8]) {
        var s = string
        s.withUTF8 { utf8 in
            let raw = UnsafeRawBufferPointer(utf8)
            let start = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: maximumOutputSize(forInputSize: raw.count)))
            let written = bytes.withUnsafeMutableBytes { out in escape(raw, into: out.baseAddress! + start) }
            bytes.removeLast(bytes.count - start - written)
        }
    }

    /// The escaped contents of a JSON string (without the quotes).
    static func escaped(_ string: String) -> String {
        var bytes: [UInt8] = []
        append(string, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    @inline(__always)
    private static func isCleanWord(_ x: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        // Any byte with the high bit set (non-ASCII)?
        if x & highs != 0 { return false }
        // Any byte < 0x20? (valid because no byte has its high bit set)
        let lessThan20 = (x &- ones &* 0x20) & ~x & highs
        // Any byte equal to '"' or '\'?
        let quote = x ^ (ones &* 0x22)
        let backslash = x ^ (ones &* 0x5C)
        let hasQuote = (quote &- ones) & ~quote & highs
        let hasBackslash = (backslash &- ones) & ~backslash & highs
        return (lessThan20 | hasQuote | hasBackslash) == 0
    }

    @inline(__always)
    private static func writeControl(_ b: UInt8, to dst: UnsafeMutablePointer<UInt8>) -> Int {
        dst[0] = UInt8(ascii: "\\")
        switch b {
        case 0x08: dst[1] = UInt8(ascii: "b"); return 2
        case 0x0C: dst[1] = UInt8(ascii: "f"); return 2
        case 0x0A: dst[1] = UInt8(ascii: "n"); return 2
        case 0x0D: dst[1] = UInt8(ascii: "r"); return 2
        case 0x09: dst[1] = UInt8(ascii: "t"); return 2
        default:
            dst[1] = UInt8(ascii: "u"); dst[2] = UInt8(ascii: "0"); dst[3] = UInt8(ascii: "0")
            hex.withUTF8Buffer { h in
                dst[4] = h[Int(b >> 4)]
                dst[5] = h[Int(b & 0x0F)]
            }
            return 6
        }
    }

    @inline(__always)
    private static func writeReplacement(to dst: UnsafeMutablePointer<UInt8>) -> Int {
        dst[0] = UInt8(ascii: "\\"); dst[1] = UInt8(ascii: "u")
        dst[2] = UInt8(ascii: "f"); dst[3] = UInt8(ascii: "f"); dst[4] = UInt8(ascii: "f"); dst[5] = UInt8(ascii: "d")
        return 6
    }

    /// Length (2...4) of the well-formed UTF-8 sequence starting at `p` (whose first byte is >= 0x80), or 0.
    /// Follows the table of well-formed byte sequences in the Unicode standard (no overlongs, no surrogates,
    /// nothing above U+10FFFF).
    @inline(__always)
    static func validSequenceLength(_ p: UnsafePointer<UInt8>, remaining: Int) -> Int {
        let b0 = p[0]
        @inline(__always) func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
            k < remaining && p[k] >= lo && p[k] <= hi
        }
        switch b0 {
        case 0xC2...0xDF:
            return cont(1) ? 2 : 0
        case 0xE0:
            return cont(1, 0xA0, 0xBF) && cont(2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF:
            return cont(1) && cont(2) ? 3 : 0
        case 0xED:
            return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0
        case 0xF0:
            return cont(1, 0x90, 0xBF) && cont(2) && cont(3) ? 4 : 0
        case 0xF1...0xF3:
            return cont(1) && cont(2) && cont(3) ? 4 : 0
        case 0xF4:
            return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0
        default:
            return 0
        }
    }
}
