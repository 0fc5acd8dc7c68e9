import Foundation
import NIOCore
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

@Suite("EnvelopeEncoder")
struct EnvelopeEncoderTests {
    /// 2026-11-21T10:00:00.123456Z
    static let t = WallClockTime(microsecondsSinceEpoch: 1_795_255_200_123_456)

    static func message(_ payload: [UInt8], kind: ReceivedMessage.Kind = .text, upstream: String = "market",
                        epoch: UInt64 = 3, seq: UInt64 = 1042, at: WallClockTime = t) -> ReceivedMessage {
        ReceivedMessage(upstream: upstream, epoch: epoch, seq: seq, receivedAt: at, kind: kind, payload: ByteBuffer(bytes: payload))
    }

    static func envelope(_ m: ReceivedMessage) -> String {
        var encoder = EnvelopeEncoder()
        var buffer = ByteBuffer()
        encoder.appendEnvelope(m, to: &buffer)
        return String(buffer: buffer)
    }

    static func escaped(_ bytes: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: JSONStringEscaper.maximumOutputSize(forInputSize: bytes.count))
        let n = bytes.withUnsafeBytes { src in out.withUnsafeMutableBytes { JSONStringEscaper.escape(src, into: $0.baseAddress!) } }
        return String(decoding: out.prefix(n), as: UTF8.self)
    }

    @Test func exampleFromTheSpecification() {
        let line = Self.envelope(Self.message(Array(#"{"p":1}"#.utf8)))
        #expect(line == #"{"upstream":"market","epoch":3,"seq":1042,"ts":"2026-11-21T10:00:00.123456Z","type":"text","data":"{\"p\":1}"}"# + "\n")
    }

    @Test func binaryIsBase64() {
        let line = Self.envelope(Self.message([0, 1, 2, 0xFF, 0xFE], kind: .binary, seq: 7))
        #expect(line == #"{"upstream":"market","epoch":3,"seq":7,"ts":"2026-11-21T10:00:00.123456Z","type":"binary","data":"AAEC//4="}"# + "\n")
    }

    @Test func emptyPayloads() {
        #expect(Self.envelope(Self.message([])).hasSuffix(#""type":"text","data":""}"# + "\n"))
        #expect(Self.envelope(Self.message([], kind: .binary)).hasSuffix(#""type":"binary","data":""}"# + "\n"))
    }

    @Test func escapesQuotesBackslashesAndControlCharacters() {
        #expect(Self.escaped(Array("a\"b\\c".utf8)) == #"a\"b\\c"#)
        #expect(Self.escaped([0x08, 0x0C, 0x0A, 0x0D, 0x09]) == #"\b\f\n\r\t"#)
        // U+007F is escaped since the one escaping policy (issue 16): TOML needs it, JSON allows it.
        #expect(Self.escaped([0x00, 0x01, 0x1F, 0x7F]) == "\\u0000\\u0001\\u001f\\u007f")
        #expect(Self.escaped(Array("/".utf8)) == "/")
    }

    /// One policy for every JSON (and TOML) string wsrelay writes: U+2028/U+2029 escaped (a JavaScript
    /// reader breaks on them raw), DEL escaped, in the 8-byte fast path and byte by byte, and the same
    /// result for Strings (auth messages, TOML) as for payload bytes.
    @Test func escapesLineSeparatorsAndDeleteEverywhere() {
        let text = "abcdefgh\u{2028}ijklmnop\u{2029}x\u{7F}yz12345678\u{7F}é\u{2027}\u{202A}"
        let expected = #"abcdefgh\u2028ijklmnop\u2029x\u007fyz12345678\u007fé"# + "\u{2027}\u{202A}"
        #expect(Self.escaped(Array(text.utf8)) == expected)
        #expect(JSONStringEscaper.escaped(text) == expected)
        #expect(AuthMessage.jsonEscaped(text) == expected)
        #expect(TOMLText.quoted(text) == "\"" + expected + "\"")
        // A cut-off separator is not a separator: invalid UTF-8 becomes U+FFFD, byte by byte.
        #expect(Self.escaped([0xE2, 0x80]) == #"\ufffd\ufffd"#)
        // The parsed line gives the original text back.
        let line = Array(("{\"s\":\"" + expected + "\"}").utf8)
        let parsed = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: String]
        #expect(parsed?["s"] == text)
    }

    @Test func keepsValidUnicodeAndReplacesInvalidBytes() {
        #expect(Self.escaped(Array("é€😀 ok".utf8)) == "é€😀 ok")
        // Lone continuation byte, truncated sequence, overlong, surrogate, above U+10FFFF.
        #expect(Self.escaped([0x80]) == "\\ufffd")
        #expect(Self.escaped([0x61, 0xE2, 0x82]) == "a\\ufffd\\ufffd")
        #expect(Self.escaped([0xC0, 0xAF]) == "\\ufffd\\ufffd")
        #expect(Self.escaped([0xED, 0xA0, 0x80]) == "\\ufffd\\ufffd\\ufffd")
        #expect(Self.escaped([0xF4, 0x90, 0x80, 0x80]) == "\\ufffd\\ufffd\\ufffd\\ufffd")
        #expect(Self.escaped([0xF0, 0x9F, 0x98, 0x80, 0xFF]) == "😀\\ufffd")
    }

    /// The sixteen- and eight-byte fast paths must agree with a byte-by-byte reference on every input.
    @Test func fastPathMatchesReference() throws {
        var rng = SplitMix64(seed: 42)
        let alphabet: [UInt8] = Array("abcXYZ019 {}[]:,\"\\".utf8) + [0x00, 0x0A, 0x1F, 0x7F, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0x80, 0xFF, 0xA8, 0x80, 0xE2]
        for _ in 0..<2000 {
            let length = Int(rng.next() % 40)
            let bytes = (0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            let fast = Self.escaped(bytes)
            let reference = bytes.chunked().map { Self.escaped($0) }.joined()
            #expect(fast == reference, "\(bytes)")
            // And it is always a valid JSON string.
            let parsed = try JSONSerialization.jsonObject(with: Data("\"\(fast)\"".utf8), options: [.fragmentsAllowed])
            #expect(parsed is String)
        }
    }

    /// Clean text with one byte to escape (or a non-ASCII sequence) at every position of the first word, the
    /// second word and the tail of sixteen-byte blocks: the block tests must see it wherever it is.
    @Test func oneDirtyByteAtEveryPositionOfCleanText() {
        let dirty: [[UInt8]] = [[0x22], [0x5C], [0x00], [0x1F], [0x7F], [0xC3, 0xA9], [0xE2, 0x80, 0xA8], [0xFF]]
        for length in [16, 17, 31, 32, 40, 47] {
            for piece in dirty {
                for position in 0...(length - piece.count) {
                    var bytes = Array(repeating: UInt8(ascii: "x"), count: length)
                    bytes.replaceSubrange(position..<(position + piece.count), with: piece)
                    let reference = bytes.chunked().map { Self.escaped($0) }.joined()
                    #expect(Self.escaped(bytes) == reference, "\(bytes)")
                }
            }
        }
    }

    @Test func everyLineIsValidJSONWithTheOriginalText() throws {
        let text = "line1\nline2\t\"quoted\" \\ é 😀 \u{0001}"
        let line = Self.envelope(Self.message(Array(text.utf8)))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["data"] as? String == text)
        #expect(object["upstream"] as? String == "market")
        #expect(object["seq"] as? Int == 1042)
        #expect(!line.dropLast().contains("\n"))
    }

    @Test func upstreamNamesAreEscaped() {
        let line = Self.envelope(Self.message([0x41], upstream: "we\"ird"))
        #expect(line.hasPrefix(#"{"upstream":"we\"ird","epoch":3,"#))
    }

    @Test func numbersAtTheirLimits() {
        let line = Self.envelope(Self.message([], epoch: 0, seq: .max))
        #expect(line.contains(#""epoch":0,"seq":18446744073709551615,"#))
    }

    @Test func timestampsKeepMicrosecondsAcrossSecondsAndCache() {
        var encoder = EnvelopeEncoder()
        var buffer = ByteBuffer()
        let base = Self.t.microsecondsSinceEpoch - 123_456
        for offset: Int64 in [0, 999_999, 1_000_000, 1_000_007, 86_400_000_000] {
            encoder.appendEnvelope(Self.message([], at: WallClockTime(microsecondsSinceEpoch: base + offset)), to: &buffer)
        }
        let stamps = String(buffer: buffer).split(separator: "\n").map { line -> String in
            let start = line.range(of: #""ts":""#)!.upperBound
            return String(line[start...].prefix(27))
        }
        #expect(stamps == [
            "2026-11-21T10:00:00.000000Z", "2026-11-21T10:00:00.999999Z", "2026-11-21T10:00:01.000000Z",
            "2026-11-21T10:00:01.000007Z", "2026-11-22T10:00:00.000000Z",
        ])
    }

    @Test func rawFormat() {
        let encoder = EnvelopeEncoder()
        var buffer = ByteBuffer()
        encoder.appendRaw(Self.message(Array(#"{"p":1}"#.utf8)), to: &buffer)
        encoder.appendRaw(Self.message([0xFF, 0x00], kind: .binary), to: &buffer)
        #expect(String(buffer: buffer) == "{\"p\":1}\n/wA=\n")
    }

    @Test func eventRecords() {
        var encoder = EnvelopeEncoder()
        var buffer = ByteBuffer()
        encoder.appendConnected(upstream: "market", epoch: 3, at: Self.t, to: &buffer)
        encoder.appendDisconnected(upstream: "market", epoch: 3, code: 1006, reason: "said \"bye\"", at: Self.t, to: &buffer)
        encoder.appendGap(upstream: "market", dropped: 17, firstSeq: 1025, lastSeq: 1041, at: Self.t, to: &buffer)
        #expect(String(buffer: buffer) == """
            {"event":"connected","upstream":"market","epoch":3,"ts":"2026-11-21T10:00:00.123456Z"}
            {"event":"disconnected","upstream":"market","epoch":3,"code":1006,"reason":"said \\"bye\\"","ts":"2026-11-21T10:00:00.123456Z"}
            {"event":"gap","upstream":"market","dropped":17,"first_seq":1025,"last_seq":1041,"ts":"2026-11-21T10:00:00.123456Z"}

            """)
    }

    @Test func base64RoundTrips() {
        var rng = SplitMix64(seed: 7)
        for length in 0..<40 {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let encoded = Base64.encode(bytes)
            #expect(encoded == Data(bytes).base64EncodedString())
            #expect(Base64.decode(encoded.utf8) == bytes)
            // The hot path's own encoder (into raw memory) writes the same.
            var out = [UInt8](repeating: 0, count: Base64.encodedSize(forInputSize: length))
            let written = bytes.withUnsafeBytes { src in out.withUnsafeMutableBytes { Base64.encode(src, into: $0.baseAddress!) } }
            #expect(written == out.count && String(decoding: out, as: UTF8.self) == encoded)
        }
        #expect(Base64.decode("a$==".utf8) == nil)
        #expect(Base64.decode("Zg".utf8) == [0x66])
    }
}

extension Array where Element == UInt8 {
    /// Splits into single bytes, except that well-formed multi-byte UTF-8 sequences stay together.
    fileprivate func chunked() -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var i = 0
        while i < count {
            var length = 1
            if self[i] >= 0x80 {
                length = withUnsafeBufferPointer { JSONStringEscaper.validSequenceLength($0.baseAddress! + i, remaining: count - i) }
                if length == 0 { length = 1 }
            }
            chunks.append(Array(self[i..<i + length]))
            i += length
        }
        return chunks
    }
}
