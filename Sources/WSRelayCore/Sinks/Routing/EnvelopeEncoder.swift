import NIOCore

/// Builds the lines sinks write: one JSON object (or one raw payload) per line, appended to a `ByteBuffer`.
///
/// ## Message envelope (`format = "envelope"`), fields always in this order
/// ```
/// {"upstream":"market","epoch":3,"seq":1042,"ts":"2026-11-21T10:00:00.123456Z","type":"text","data":"{\"p\":1}"}
/// {"upstream":"market","epoch":3,"seq":1043,"ts":"2026-11-21T10:00:00.123457Z","type":"binary","data":"AAEC"}
/// ```
/// `ts` is the receive time, UTC, microseconds. Text `data` is the payload as a JSON string (invalid UTF-8
/// bytes become U+FFFD); binary `data` is standard base64 with padding.
///
/// ## Raw (`format = "raw"`)
/// The text payload verbatim, then `\n`; a binary payload as base64, then `\n`.
///
/// ## Event records (both formats; every one has `"event"` as its first key)
/// ```
/// {"event":"connected","upstream":"market","epoch":3,"ts":"..."}
/// {"event":"disconnected","upstream":"market","epoch":3,"code":1006,"reason":"","ts":"..."}
/// {"event":"gap","upstream":"market","dropped":17,"first_seq":1025,"last_seq":1041,"ts":"..."}
/// ```
/// For `gap`, `ts` is when the record was written (when the sink recovered), and `first_seq`/`last_seq`
/// are the lowest and highest `seq` among the dropped messages of that upstream.
///
/// Hand-written rather than `JSONEncoder`: this runs once per message per format, so it writes straight
/// into the buffer's memory and formats the timestamp from a per-second cache.
public struct EnvelopeEncoder: Sendable {
    private var cachedSecond: Int64 = .min
    /// `YYYY-MM-DDTHH:MM:SS.` of `cachedSecond`.
    private var cachedStamp: [UInt8] = []

    public init() {}

    // MARK: Messages

    public mutating func appendEnvelope(_ message: ReceivedMessage, to buffer: inout ByteBuffer) {
        appendEnvelope(message, upstreamPrefix: Self.envelopePrefix(upstream: message.upstream), to: &buffer)
    }

    /// `upstreamPrefix` is `envelopePrefix(upstream:)`, computed once per upstream by the router.
    mutating func appendEnvelope(_ message: ReceivedMessage, upstreamPrefix: [UInt8], to buffer: inout ByteBuffer) {
        refreshStamp(message.receivedAt)
        let payloadCount = message.payload.readableBytes
        let dataMax = message.kind == .text
            ? JSONStringEscaper.maximumOutputSize(forInputSize: payloadCount)
            : Base64.encodedSize(forInputSize: payloadCount)
        let maximum = upstreamPrefix.count &+ 160 &+ dataMax
        let stamp = cachedStamp
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: maximum) { out in
            var w = RawLineWriter(out.baseAddress!)
            w.put(upstreamPrefix)
            w.putDecimal(message.epoch)
            w.put(",\"seq\":")
            w.putDecimal(message.seq)
            w.put(",\"ts\":\"")
            w.putTimestamp(stamp: stamp, at: message.receivedAt)
            if message.kind == .text {
                w.put("\",\"type\":\"text\",\"data\":\"")
                message.payload.withUnsafeReadableBytes { src in
                    w.offset &+= JSONStringEscaper.escape(src, into: w.base + w.offset)
                }
            } else {
                w.put("\",\"type\":\"binary\",\"data\":\"")
                message.payload.withUnsafeReadableBytes { src in
                    w.offset &+= Base64.encode(src, into: w.base + w.offset)
                }
            }
            w.put("\"}\n")
            return w.offset
        }
    }

    /// The exact size of the line `appendRaw` writes for `message`, newline included.
    @inline(__always)
    static func rawLineSize(_ message: ReceivedMessage) -> Int {
        let count = message.payload.readableBytes
        return (message.kind == .text ? count : Base64.encodedSize(forInputSize: count)) &+ 1
    }

    public func appendRaw(_ message: ReceivedMessage, to buffer: inout ByteBuffer) {
        if message.kind == .text {
            var payload = message.payload
            buffer.writeBuffer(&payload)
            buffer.writeInteger(UInt8(ascii: "\n"))
        } else {
            let count = Base64.encodedSize(forInputSize: message.payload.readableBytes)
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count &+ 1) { out in
                let n = message.payload.withUnsafeReadableBytes { Base64.encode($0, into: out.baseAddress!) }
                out[n] = UInt8(ascii: "\n")
                return n &+ 1
            }
        }
    }

    /// `{"upstream":"<escaped name>","epoch":`
    static func envelopePrefix(upstream: String) -> [UInt8] {
        var bytes = Array("{\"upstream\":\"".utf8)
        JSONStringEscaper.append(upstream, to: &bytes)
        bytes.append(contentsOf: "\",\"epoch\":".utf8)
        return bytes
    }

    // MARK: Event records

    public mutating func appendConnected(upstream: String, epoch: UInt64, at time: WallClockTime, to buffer: inout ByteBuffer) {
        var line = Array("{\"event\":\"connected\",\"upstream\":\"".utf8)
        JSONStringEscaper.append(upstream, to: &line)
        line.append(contentsOf: "\",\"epoch\":".utf8)
        Self.appendDecimal(epoch, to: &line)
        appendTail(time, to: &line)
        buffer.writeBytes(line)
    }

    /// `{"event":"restarted","pid":123,"epochs":{"market":8},"ts":"..."}`: the first line a subscriber kept
    /// across a restart (file descriptor store) receives from the new process `pid`; `epochs` is the epoch of
    /// each upstream's first connection in the new process (left out when the counters start again at 1).
    public mutating func appendRestarted(pid: Int32, epochs: [(name: String, epoch: UInt64)]?, at time: WallClockTime,
                                         to buffer: inout ByteBuffer) {
        var line = Array("{\"event\":\"restarted\",\"pid\":".utf8)
        Self.appendDecimal(UInt64(max(0, pid)), to: &line)
        if let epochs {
            line.append(contentsOf: ",\"epochs\":{".utf8)
            for (index, entry) in epochs.enumerated() {
                if index > 0 { line.append(UInt8(ascii: ",")) }
                line.append(UInt8(ascii: "\""))
                JSONStringEscaper.append(entry.name, to: &line)
                line.append(contentsOf: "\":".utf8)
                Self.appendDecimal(entry.epoch, to: &line)
            }
            line.append(UInt8(ascii: "}"))
        }
        appendTail(time, to: &line)
        buffer.writeBytes(line)
    }

    public mutating func appendDisconnected(
        upstream: String, epoch: UInt64, code: UInt16, reason: String, at time: WallClockTime, to buffer: inout ByteBuffer
    ) {
        var line = Array("{\"event\":\"disconnected\",\"upstream\":\"".utf8)
        JSONStringEscaper.append(upstream, to: &line)
        line.append(contentsOf: "\",\"epoch\":".utf8)
        Self.appendDecimal(epoch, to: &line)
        line.append(contentsOf: ",\"code\":".utf8)
        Self.appendDecimal(UInt64(code), to: &line)
        line.append(contentsOf: ",\"reason\":\"".utf8)
        JSONStringEscaper.append(reason, to: &line)
        line.append(UInt8(ascii: "\""))
        appendTail(time, to: &line)
        buffer.writeBytes(line)
    }

    public mutating func appendGap(
        upstream: String, dropped: UInt64, firstSeq: UInt64, lastSeq: UInt64, at time: WallClockTime,
        to buffer: inout ByteBuffer
    ) {
        var line = Array("{\"event\":\"gap\",\"upstream\":\"".utf8)
        JSONStringEscaper.append(upstream, to: &line)
        line.append(contentsOf: "\",\"dropped\":".utf8)
        Self.appendDecimal(dropped, to: &line)
        line.append(contentsOf: ",\"first_seq\":".utf8)
        Self.appendDecimal(firstSeq, to: &line)
        line.append(contentsOf: ",\"last_seq\":".utf8)
        Self.appendDecimal(lastSeq, to: &line)
        appendTail(time, to: &line)
        buffer.writeBytes(line)
    }

    /// `,"ts":"..."}\n`
    private mutating func appendTail(_ time: WallClockTime, to line: inout [UInt8]) {
        line.append(contentsOf: ",\"ts\":\"".utf8)
        time.appendRFC3339(to: &line)
        line.append(contentsOf: "\"}\n".utf8)
    }

    static func appendDecimal(_ value: UInt64, to bytes: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                      UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let n = withUnsafeMutableBytes(of: &digits) { RawLineWriter.formatDecimal(value, into: $0.baseAddress!) }
        withUnsafeBytes(of: &digits) { bytes.append(contentsOf: $0.prefix(n)) }
    }

    // MARK: Timestamp cache

    private mutating func refreshStamp(_ time: WallClockTime) {
        let micros = time.microsecondsSinceEpoch
        var second = micros / 1_000_000
        if micros % 1_000_000 < 0 { second -= 1 }
        if second == cachedSecond { return }
        var full: [UInt8] = []
        full.reserveCapacity(27)
        WallClockTime(microsecondsSinceEpoch: second * 1_000_000).appendRFC3339(to: &full)
        cachedStamp = Array(full.prefix(20))
        cachedSecond = second
    }
}

/// A cursor over reserved output memory; every `put` assumes the caller reserved enough.
struct RawLineWriter {
    let base: UnsafeMutableRawPointer
    var offset = 0

    init(_ base: UnsafeMutableRawPointer) { self.base = base }

    @inline(__always)
    mutating func put(_ s: StaticString) {
        s.withUTF8Buffer { src in
            (base + offset).copyMemory(from: src.baseAddress!, byteCount: src.count)
            offset &+= src.count
        }
    }

    @inline(__always)
    mutating func put(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { src in
            (base + offset).copyMemory(from: src.baseAddress!, byteCount: src.count)
            offset &+= src.count
        }
    }

    @inline(__always)
    mutating func putDecimal(_ value: UInt64) {
        offset &+= Self.formatDecimal(value, into: base + offset)
    }

    /// `stamp` is the cached `YYYY-MM-DDTHH:MM:SS.`; appends it, the six microsecond digits and `Z`.
    @inline(__always)
    mutating func putTimestamp(stamp: [UInt8], at time: WallClockTime) {
        put(stamp)
        var micros = Int(time.microsecondsSinceEpoch % 1_000_000)
        if micros < 0 { micros += 1_000_000 }
        let p = (base + offset).assumingMemoryBound(to: UInt8.self)
        var k = 5
        while k >= 0 {
            p[k] = UInt8(ascii: "0") &+ UInt8(micros % 10)
            micros /= 10
            k -= 1
        }
        p[6] = UInt8(ascii: "Z")
        offset &+= 7
    }

    /// Writes the decimal digits of `value` (at most 20) and returns how many.
    @inline(__always)
    static func formatDecimal(_ value: UInt64, into out: UnsafeMutableRawPointer) -> Int {
        let p = out.assumingMemoryBound(to: UInt8.self)
        if value < 10 {
            p[0] = UInt8(ascii: "0") &+ UInt8(value)
            return 1
        }
        var count = 0
        var v = value
        while v > 0 { count &+= 1; v /= 10 }
        v = value
        var k = count &- 1
        while k >= 0 {
            p[k] = UInt8(ascii: "0") &+ UInt8(v % 10)
            v /= 10
            k &-= 1
        }
        return count
    }
}
