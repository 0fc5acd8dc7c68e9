#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reads the `Retry-After` header of a rejected WebSocket upgrade (typically 429 or 503).
///
/// It exists so a server that tells us when to come back is obeyed instead of being hit again by the
/// regular backoff, and so a hostile or broken value cannot park an upstream for days: the result is
/// clamped to `[0, maximum]` (one hour). The three date grammars are checked by hand; the calendar arithmetic
/// is Foundation's (`Calendar`, Gregorian, GMT). Not `DateFormatter`: even with `isLenient = false`
/// it accepts what RFC 9110 rejects (a missing `GMT`, one-digit fields, a two-digit year for `yyyy`, a wrong
/// day name), and swift-foundation 6.3 has no HTTP-date format style.
///
/// Accepted forms (RFC 9110 §10.2.3 and §5.6.7):
/// - delta-seconds: `120`
/// - IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`
/// - obsolete RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT` (a two-digit year more than 50 years in the
///   future means the most recent past year with those digits)
/// - obsolete asctime: `Sun Nov  6 08:49:37 1994`
public enum RetryAfter {
    /// The longest wait a `Retry-After` can impose.
    public static let maximum: Duration = .seconds(3600)

    /// The wait the header asks for, relative to `now`; `nil` when the value is not a valid `Retry-After`.
    /// A date in the past yields zero.
    public static func parse(_ headerValue: String, now: Date) -> Duration? {
        let value = headerValue.trimmingHTTPWhitespace
        guard !value.isEmpty else { return nil }

        if value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // delta-seconds; a number too large for Int is certainly over the cap.
            guard let seconds = Int(value) else { return maximum }
            return seconds >= 3600 ? maximum : .seconds(seconds)
        }

        guard let epochSeconds = HTTPDate.parse(value, now: now) else { return nil }
        let delta = Double(epochSeconds) - now.timeIntervalSince1970
        if !(delta > 0) { return .zero }
        if delta >= 3600 { return maximum }
        // Whole milliseconds, rounded up so we never come back early.
        return .milliseconds(Int64((delta * 1000).rounded(.up)))
    }
}

/// The three HTTP-date grammars, parsed to seconds since 1970 (UTC).
private enum HTTPDate {
    static let shortDays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    static let longDays = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func parse(_ value: String, now: Date) -> Int64? {
        if let comma = value.firstIndex(of: ",") {
            let dayName = String(value[..<comma])
            let rest = value[value.index(after: comma)...].split(separator: " ")
            guard let zone = rest.last, zone == "GMT" else { return nil }
            if shortDays.contains(dayName) {
                // IMF-fixdate: 06 Nov 1994 08:49:37 GMT
                guard rest.count == 5,
                      let day = number(rest[0], digits: 2...2),
                      let month = month(rest[1]),
                      let year = number(rest[2], digits: 4...4)
                else { return nil }
                return combine(year: year, month: month, day: day, time: rest[3])
            }
            if longDays.contains(dayName) {
                // RFC 850: 06-Nov-94 08:49:37 GMT
                guard rest.count == 3 else { return nil }
                let date = rest[0].split(separator: "-", omittingEmptySubsequences: false)
                guard date.count == 3,
                      let day = number(date[0], digits: 2...2),
                      let month = month(date[1]),
                      let yy = number(date[2], digits: 2...2)
                else { return nil }
                return combine(year: fullYear(twoDigit: yy, now: now), month: month, day: day, time: rest[1])
            }
            return nil
        }
        // asctime: Sun Nov  6 08:49:37 1994 (the day is space-padded, so split on runs of spaces)
        let parts = value.split(separator: " ")
        guard parts.count == 5, shortDays.contains(String(parts[0])),
              let month = month(parts[1]),
              let day = number(parts[2], digits: 1...2),
              let year = number(parts[4], digits: 4...4)
        else { return nil }
        return combine(year: year, month: month, day: day, time: parts[3])
    }

    /// A run of ASCII digits of allowed length.
    static func number(_ text: Substring, digits: ClosedRange<Int>) -> Int? {
        guard digits.contains(text.utf8.count),
              text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        return Int(text)
    }

    /// 1...12 from a case-sensitive three-letter month name.
    static func month(_ text: Substring) -> Int? {
        months.firstIndex(of: String(text)).map { $0 + 1 }
    }

    /// GMT, Gregorian: the calendar of HTTP dates (Foundation switches to Julian before 1582, which no
    /// Retry-After date reaches: anything that old is in the past and means "now").
    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        return calendar
    }()

    /// RFC 9110 §5.6.7: a two-digit year that would be more than 50 years in the future is in the past century.
    static func fullYear(twoDigit yy: Int, now: Date) -> Int {
        let currentYear = calendar.component(.year, from: now)
        var year = (currentYear / 100) * 100 + yy
        if year > currentYear + 50 { year -= 100 }
        return year
    }

    /// `HH:MM:SS` plus a date that must exist (no 31 Feb, no 29 Feb 1900), to seconds since 1970.
    static func combine(year: Int, month: Int, day: Int, time: Substring) -> Int64? {
        let hms = time.split(separator: ":", omittingEmptySubsequences: false)
        guard hms.count == 3,
              let hour = number(hms[0], digits: 2...2), hour < 24,
              let minute = number(hms[1], digits: 2...2), minute < 60,
              let second = number(hms[2], digits: 2...2), second <= 60,  // 60: leap second
              year >= 1
        else { return nil }
        // A leap second is the second after :59.
        let components = DateComponents(year: year, month: month, day: day, hour: hour, minute: minute,
                                         second: min(second, 59))
        guard components.isValidDate(in: calendar), let date = calendar.date(from: components) else { return nil }
        return Int64(date.timeIntervalSince1970) + (second == 60 ? 1 : 0)
    }
}
