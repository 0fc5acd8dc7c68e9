/// What one simulated upstream connection does, chosen by the client through the request's query string
/// (`/feed?count=1000&size=100&close=4001`), so one server can play every scenario a test or demo needs.
public struct SimulatorScenario: Sendable, Equatable {
    /// Messages to send after the upgrade (0: none).
    public var count = 0
    /// Size of each message in bytes (at least the size of the JSON skeleton).
    public var size = 64
    /// Messages per second; nil sends as fast as the client reads.
    public var rate: Double?
    /// Pacing interval for `rate` in milliseconds (default 1): a thousand slow connections then need a tenth
    /// of the timer firings, so the simulator does not compete with the relay for the benchmark's cores.
    public var tickMilliseconds = 1
    /// Start the pacing at a random phase (within the tick and within one message), so many paced connections
    /// released together do not all send in the same tick (independent feeds are not synchronised).
    public var spread = false
    public var binary = false
    /// Split each message into this many frames.
    public var fragments = 1
    /// After `count` messages (or at once when count is 0 and `closeAfter` given), close with this code.
    public var closeCode: UInt16?
    public var closeReason = "simulated close"
    /// Close after this many messages of this connection (defaults to `count`).
    public var closeAfter: Int?
    /// Do not answer pings (a dead peer, as far as keepalive can tell).
    public var ignorePings = false
    /// Answer the upgrade request with this HTTP status instead of 101.
    public var status: Int?
    public var retryAfter: String?
    /// Send one text frame with invalid UTF-8 after the messages.
    public var invalidUTF8 = false
    /// Send one message of this many bytes after the messages.
    public var oversize: Int?
    /// Echo every data message back.
    public var echo = false
    /// Never answer the client's close frame (a server that stalls the closing handshake).
    public var ignoreClose = false
    /// Put the send time in every text message (`"t":<CLOCK_MONOTONIC nanoseconds>` after `"n"`), so a reader
    /// on the same machine can measure how long a message took to reach it.
    public var stamp = false
    /// Send nothing until `SimulatorServer.release()` (the benchmarks start the clock there, after every
    /// client and subscriber is in place, instead of racing the connection setup).
    public var hold = false
    /// Accept a permessage-deflate offer and send every message compressed (one zlib context per connection,
    /// RFC 7692 context takeover): the flood source for the compressed benchmark.
    public var deflate = false
    /// Text messages as market-data-like JSON (trades with varying prices, sizes and times) instead of a run
    /// of padding: compressible the way real feeds are, not a thousandfold.
    public var trades = false
    /// Number this connection's messages 1, 2, 3 … itself instead of from the server-wide counter, so every
    /// connection gets the same sequence (two relays on one upstream, as for a relay pair).
    public var same = false

    public init() {}

    public init(query: String) {
        self.init()
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            let key = parts[0]
            let value = parts.count > 1 ? parts[1].removingPercentEncodingLite : ""
            switch key {
            case "count": count = Int(value) ?? 0
            case "size": size = Int(value) ?? size
            case "rate": rate = Double(value)
            case "tick": tickMilliseconds = max(1, Int(value) ?? 1)
            case "spread": spread = value != "0"
            case "binary": binary = value != "0"
            case "fragments": fragments = max(1, Int(value) ?? 1)
            case "close": closeCode = UInt16(value)
            case "close_reason": closeReason = value
            case "close_after": closeAfter = Int(value)
            case "ignore_pings": ignorePings = value != "0"
            case "status": status = Int(value)
            case "retry_after": retryAfter = value
            case "invalid_utf8": invalidUTF8 = value != "0"
            case "oversize": oversize = Int(value)
            case "echo": echo = value != "0"
            case "ignore_close": ignoreClose = value != "0"
            case "stamp": stamp = value != "0"
            case "hold": hold = value != "0"
            case "deflate": deflate = value != "0"
            case "trades": trades = value != "0"
            case "same": same = value != "0"
            default: break
            }
        }
    }
}

extension String {
    /// Percent-decoding without Foundation, for query values.
    var removingPercentEncodingLite: String {
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let h = iterator.next(), let l = iterator.next(),
               let value = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) {
                bytes.append(value)
            } else if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
