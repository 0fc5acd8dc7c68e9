/// The one set of `Duration` conversions: whole units for APIs that count in integers (NIO's `TimeAmount`,
/// cnats' milliseconds and nanoseconds, the configuration's nanosecond precision), saturating instead of
/// trapping, and the fixed `1.234s` text of log fields.
///
/// `Duration` keeps seconds and attoseconds; multiplying the seconds can overflow `Int64` for durations over
/// 292 years, which the configuration allows ("100000d" is a valid duration), so every conversion clamps.
extension Duration {
    /// Whole nanoseconds, saturating at the `Int64` range.
    public var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }

    /// Whole nanoseconds, saturating, a negative duration counted as zero (timers and random windows).
    public var nonNegativeNanosecondsClamped: Int64 { max(0, nanosecondsClamped) }

    /// Whole microseconds, saturating.
    public var microseconds: Int64 { nanosecondsClamped / 1_000 }

    /// Whole milliseconds, saturating.
    public var millisecondsClamped: Int64 { nanosecondsClamped / 1_000_000 }

    /// Seconds with three decimals, `"1.234s"`: the fixed form of log fields such as `failed_for`.
    public var secondsText: String {
        let ms = millisecondsClamped
        let sign = ms < 0 ? "-" : ""
        let magnitude = ms.magnitude
        let fraction = String(magnitude % 1000)
        return "\(sign)\(magnitude / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)s"
    }
}
