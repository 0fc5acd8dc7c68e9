#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reads the `Retry-After` header of a rejected WebSocket upgrade (typically 429 or 503).
///
/// It exists so a server that tells us when to come back is obeyed instead of being hit again by the
/// regular backoff, and so a hostile or broken value cannot park an upstream for days: the result is
/// clamped to `[0, maximum]` (one hour). It is a hand-written parser rather than a `DateFormatter` so it
/// is locale-independent, allocation-light and behaves the same on every platform.
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

    /// RFC 9110 §5.6.7: a two-digit year that would be more than 50 years in the future is in the past century.
    static func fullYear(twoDigit yy: Int, now: Date) -> Int {
        let nowDays = Int((now.timeIntervalSince1970 / 86_400).rounded(.down))
        let currentYear = civilYear(fromDays: nowDays)
        var year = (currentYear / 100) * 100 + yy
        if year > currentYear + 50 { year -= 100 }
        return year
    }

    /// `HH:MM:SS` plus a validated date, to seconds since 1970.
    static func combine(year: Int, month: Int, day: Int, time: Substring) -> Int64? {
        let hms = time.split(separator: ":", omittingEmptySubsequences: false)
        guard hms.count == 3,
              let hour = number(hms[0], digits: 2...2), hour < 24,
              let minute = number(hms[1], digits: 2...2), minute < 60,
              let second = number(hms[2], digits: 2...2), second <= 60,  // 60: leap second
              year >= 1, day >= 1, day <= daysIn(month: month, year: year)
        else { return nil }
        let days = Int64(CivilCalendar.daysFromCivil(year: year, month: month, day: day))
        return days * 86_400 + Int64(hour * 3600 + minute * 60 + second)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2:
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
            return leap ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }


    /// The year of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`, year only).
    static func civilYear(fromDays days: Int) -> Int {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let month = mp < 10 ? mp + 3 : mp - 9
        return yoe + era * 400 + (month <= 2 ? 1 : 0)
    }
}
