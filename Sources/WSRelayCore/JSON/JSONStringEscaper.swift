/// Writes bytes as the inside of a JSON string (no surrounding quotes), straight into raw memory. The one
/// string-escaping policy of wsrelay: envelopes, replies to subscribers and the control socket, auth
/// messages, probe output, and TOML basic strings (the effective config; TOML accepts exactly these escapes).
///
/// - `"` and `\` are escaped; `\b \f \n \r \t` get their short escapes; other control characters
///   (U+0000–U+001F) and U+007F (which TOML requires escaped) become `\u00XX`.
/// - U+2028 and U+2029 become `\u2028` and `\u2029`: JSON allows them raw, but a consumer that evaluates a
///   line as JavaScript (or splits lines on Unicode separators) breaks there. Escaping them costs nothing on
///   ASCII text and makes every output safe for every such reader. Everything else is copied as is.
/// - Input is validated as UTF-8 on the way (WebSocket text must be UTF-8, but a sink must never write a
///   line that is not valid JSON): every byte that does not start a well-formed sequence is written as
///   `\ufffd`, and writing continues with the next byte.
///
/// The caller reserves `maximumOutputSize(forInputSize:)` bytes; ASCII runs are checked sixteen bytes (two
/// words, one test) at a time, so the common case (JSON text in JSON) is close to a memcpy.
///
/// Hand-written because it is on the hot path (every text message of every envelope) and the library costs
/// more there (bench/micro --instructions, release build; bench/RESULTS.md "Hot-path helpers"): 2,588
/// instructions per 100-byte JSON payload against 13,399 for Foundation's `JSONEncoder` (5.2x; it also needs a
/// `String` first and returns a new `Data` instead of writing into the line), 99,973 against 216,431 per 4 KiB
/// (2.2x). Foundation has no escaper that writes into caller memory. With DEL and U+2028/2029 escaped and
/// eight bytes taken one at a time after a word that needs escaping (issue 16; `bench/micro --instructions`,
/// commit after a94dc80): 2,118 per 100 bytes (was 2,657 on the same build; JSONEncoder 13,156) and 77,165
/// per 4 KiB. Two words per test instead of one (issue 15, session 8; `bench/run --instructions`, the daemon's
/// envelope file from the simulator): 38,711 → 29,201 instructions per 4 KiB message, the escaper's share
/// 18,524 → 9,709. A `SIMD16<UInt8>` compare instead was 6.5 times slower (250,364): it did not
/// compile to vector instructions here.
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
            // Sixteen clean bytes at a time (two words, one test): no byte < 0x20, >= 0x7F, '"' or '\'.
            while i &+ 16 <= n {
                let first = UnsafeRawPointer(src + i).loadUnaligned(as: UInt64.self)
                let second = UnsafeRawPointer(src + (i &+ 8)).loadUnaligned(as: UInt64.self)
                if dirtyBytes(first) | dirtyBytes(second) != 0 { break }
                UnsafeMutableRawPointer(dst + o).storeBytes(of: first, as: UInt64.self)
                UnsafeMutableRawPointer(dst + (o &+ 8)).storeBytes(of: second, as: UInt64.self)
                i &+= 16
                o &+= 16
            }
            // Eight clean bytes at a time.
            while i &+ 8 <= n {
                let word = UnsafeRawPointer(src + i).loadUnaligned(as: UInt64.self)
                if dirtyBytes(word) != 0 { break }
                UnsafeMutableRawPointer(dst + o).storeBytes(of: word, as: UInt64.self)
                i &+= 8
                o &+= 8
            }
            if i >= n { break }
            // The next word holds a byte to escape (or fewer than eight are left): take the next eight bytes
            // one at a time before trying words again, so text dense with quotes does not test a word per byte.
            let end = min(n, i &+ 8)
            while i < end {
                let b = src[i]
                if b >= 0x20 && b < 0x7F {
                    if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                        dst[o] = UInt8(ascii: "\\"); dst[o &+ 1] = b; o &+= 2
                    } else {
                        dst[o] = b; o &+= 1
                    }
                    i &+= 1
                } else if b <= 0x7F {
                    o &+= writeControl(b, to: dst + o)
                    i &+= 1
                } else {
                    let length = validSequenceLength(src + i, remaining: n &- i)
                    if length == 0 {
                        o &+= writeReplacement(to: dst + o)
                        i &+= 1
                    } else if length == 3 && b == 0xE2 && src[i &+ 1] == 0x80 && (src[i &+ 2] == 0xA8 || src[i &+ 2] == 0xA9) {
                        o &+= writeLineSeparator(src[i &+ 2], to: dst + o)
                        i &+= 3
                    } else {
                        for k in 0..<length { dst[o &+ k] = src[i &+ k] }
                        o &+= length
                        i &+= length
                    }
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

    /// The elements of a JSON array of strings, `"a","b"` (the caller writes the brackets).
    static func appendElements(_ strings: [String], to bytes: inout [UInt8]) {
        for (i, string) in strings.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(UInt8(ascii: "\""))
            append(string, to: &bytes)
            bytes.append(UInt8(ascii: "\""))
        }
    }

    /// The escaped contents of a JSON string (without the quotes).
    static func escaped(_ string: String) -> String {
        var bytes: [UInt8] = []
        append(string, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Nonzero exactly when a byte of `x` needs escaping or is not ASCII. Which high bits are set says nothing
    /// about which bytes (borrows run on); only the whole is exact, and that is all the callers ask, so two
    /// words can share one test.
    @inline(__always)
    private static func dirtyBytes(_ x: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        // A byte with the high bit set (non-ASCII), or 0x7F (x + 1 sets it there; a carry into a byte only
        // comes out of a byte >= 0x80, which is caught anyway).
        let highOrDelete = x | (x &+ ones)
        // A byte < 0x20: exact when no byte has its high bit set; when one has, the term above is set.
        let control = (x &- ones &* 0x20) & ~x
        // A byte equal to '"' or '\' (a zero byte after the xor).
        let quote = x ^ (ones &* 0x22)
        let backslash = x ^ (ones &* 0x5C)
        let quoteOrBackslash = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash)
        return (highOrDelete | control | quoteOrBackslash) & highs
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

    /// `\u2028` or `\u2029` for U+2028/U+2029 (`last` is the third byte of its UTF-8 form).
    @inline(__always)
    private static func writeLineSeparator(_ last: UInt8, to dst: UnsafeMutablePointer<UInt8>) -> Int {
        dst[0] = UInt8(ascii: "\\"); dst[1] = UInt8(ascii: "u")
        dst[2] = UInt8(ascii: "2"); dst[3] = UInt8(ascii: "0"); dst[4] = UInt8(ascii: "2")
        dst[5] = last == 0xA8 ? UInt8(ascii: "8") : UInt8(ascii: "9")
        return 6
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
