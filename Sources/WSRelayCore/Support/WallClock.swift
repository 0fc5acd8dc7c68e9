import Glibc

/// A wall-clock instant with microsecond precision, as stamped on received messages and log lines.
///
/// Kept as an integer so stamping a message costs one `clock_gettime`, and formatted with a hand-written
/// RFC 3339 writer because the envelope is built once per message on the hot path.
public struct WallClockTime: Sendable, Hashable, Comparable {
    public var microsecondsSinceEpoch: Int64

    public init(microsecondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = microsecondsSinceEpoch
    }

    public static func now() -> WallClockTime {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return WallClockTime(microsecondsSinceEpoch: Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000)
    }

    public static func < (a: WallClockTime, b: WallClockTime) -> Bool {
        a.microsecondsSinceEpoch < b.microsecondsSinceEpoch
    }

    public var secondsSinceEpoch: Int64 { microsecondsSinceEpoch / 1_000_000 }

    /// `2026-11-21T10:00:00.123456Z`
    public var rfc3339: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(27)
        appendRFC3339(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The range RFC 3339's four-digit years can show: 0001-01-01T00:00:00Z ... 9999-12-31T23:59:59.999999Z.
    static let rfc3339Range: ClosedRange<Int64> = -62_135_596_800_000_000 ... 253_402_300_799_999_999

    /// Appends `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` without allocating intermediate strings. An instant outside the
    /// four-digit years is written as the nearest end of that range (a token endpoint announcing an expiry
    /// in the year 25 billion crashed the formatter; found by the token-response fuzz target).
    public func appendRFC3339(to bytes: inout [UInt8]) {
        let clamped = min(max(microsecondsSinceEpoch, Self.rfc3339Range.lowerBound), Self.rfc3339Range.upperBound)
        var seconds = time_t(clamped.floorDiv(1_000_000))
        let micros = Int(clamped - Int64(seconds) * 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func put(_ value: Int, digits: Int) {
            var divisor = 1
            for _ in 1..<digits { divisor *= 10 }
            var v = value
            while divisor > 0 {
                bytes.append(UInt8(ascii: "0") + UInt8(v / divisor))
                v %= divisor
                divisor /= 10
            }
        }
        put(Int(parts.tm_year) + 1900, digits: 4); bytes.append(UInt8(ascii: "-"))
        put(Int(parts.tm_mon) + 1, digits: 2); bytes.append(UInt8(ascii: "-"))
        put(Int(parts.tm_mday), digits: 2); bytes.append(UInt8(ascii: "T"))
        put(Int(parts.tm_hour), digits: 2); bytes.append(UInt8(ascii: ":"))
        put(Int(parts.tm_min), digits: 2); bytes.append(UInt8(ascii: ":"))
        put(Int(parts.tm_sec), digits: 2); bytes.append(UInt8(ascii: "."))
        put(micros, digits: 6); bytes.append(UInt8(ascii: "Z"))
    }
}

extension Int64 {
    fileprivate func floorDiv(_ d: Int64) -> Int64 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }
}
