#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import WSRelayCore

@Suite("RetryAfter")
struct RetryAfterTests {
    /// Sun, 06 Nov 1994 08:49:37 GMT, the RFC 9110 example instant.
    static let example: Double = 784_111_777
    /// Two minutes before the example date.
    static let now = Date(timeIntervalSince1970: example - 120)

    @Test(arguments: [
        ("30", Duration.seconds(30)),
        ("0", .zero),
        (" 120\t", .seconds(120)),
        ("3599", .seconds(3599)),
        ("3600", .seconds(3600)),
        ("7200", .seconds(3600)),
        ("99999999999999999999999999", .seconds(3600)),
    ])
    func deltaSeconds(_ value: String, _ expected: Duration) {
        #expect(RetryAfter.parse(value, now: Self.now) == expected)
    }

    @Test(arguments: ["", "  ", "-5", "+5", "1.5", "30s", "abc", "0x10", "3 0"])
    func invalidValues(_ value: String) {
        #expect(RetryAfter.parse(value, now: Self.now) == nil)
    }

    @Test func imfFixdate() {
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: Self.now) == .seconds(120))
    }

    @Test func rfc850Date() {
        #expect(RetryAfter.parse("Sunday, 06-Nov-94 08:49:37 GMT", now: Self.now) == .seconds(120))
    }

    @Test func asctimeDate() {
        #expect(RetryAfter.parse("Sun Nov  6 08:49:37 1994", now: Self.now) == .seconds(120))
        #expect(RetryAfter.parse("Sun Nov 6 08:49:37 1994", now: Self.now) == .seconds(120))
    }

    @Test func pastDateMeansNow() {
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:40:00 GMT", now: Self.now) == .zero)
        #expect(RetryAfter.parse("Thu, 01 Jan 1970 00:00:00 GMT", now: Self.now) == .zero)
    }

    @Test func farFutureIsClampedToOneHour() {
        #expect(RetryAfter.parse("Mon, 07 Nov 1994 08:49:37 GMT", now: Self.now) == .seconds(3600))
        #expect(RetryAfter.parse("Fri, 31 Dec 9999 23:59:59 GMT", now: Self.now) == RetryAfter.maximum)
    }

    @Test func fractionalNowRoundsUp() {
        let now = Date(timeIntervalSince1970: Self.example - 29.5)
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == .milliseconds(29_500))
    }

    @Test func leapDayAndYearBoundary() {
        // 2000-02-29 12:00:00 UTC = 951825600
        let now = Date(timeIntervalSince1970: 951_825_600 - 10)
        #expect(RetryAfter.parse("Tue, 29 Feb 2000 12:00:00 GMT", now: now) == .seconds(10))
        // 2026-01-01 00:00:00 UTC = 1767225600; RFC 850 year 26 is next year, not 1926.
        let newYearsEve = Date(timeIntervalSince1970: 1_767_225_600 - 1800)
        #expect(RetryAfter.parse("Thursday, 01-Jan-26 00:00:00 GMT", now: newYearsEve) == .seconds(1800))
        #expect(RetryAfter.parse("Thu, 01 Jan 2026 00:00:00 GMT", now: newYearsEve) == .seconds(1800))
        #expect(RetryAfter.parse("Thu Jan  1 00:00:00 2026", now: newYearsEve) == .seconds(1800))
    }

    @Test func twoDigitYearMoreThanFiftyYearsAheadIsInThePast() {
        // Seen from 2025, "94" is 1994 (2094 would be > 50 years ahead): in the past, so zero.
        let now = Date(timeIntervalSince1970: 1_767_225_600 - 86_400 * 30)
        #expect(RetryAfter.parse("Sunday, 06-Nov-94 08:49:37 GMT", now: now) == .zero)
    }

    @Test(arguments: [
        "Sun, 31 Feb 1994 08:49:37 GMT",  // no such day
        "Sun, 29 Feb 1900 08:49:37 GMT",  // 1900 is not a leap year
        "Sun, 06 Foo 1994 08:49:37 GMT",  // month
        "Sun, 06 Nov 1994 08:49:37 UTC",  // zone must be GMT
        "Sun, 06 Nov 1994 08:49:37",      // zone missing
        "Sun, 06 Nov 1994 24:00:00 GMT",  // hour
        "Sun, 06 Nov 1994 08:60:00 GMT",  // minute
        "Sun, 06 Nov 1994 8:49:37 GMT",   // two-digit hour
        "Sun, 6 Nov 1994 08:49:37 GMT",   // IMF day is two digits
        "Sun, 06 Nov 94 08:49:37 GMT",    // IMF year is four digits
        "Xyz, 06 Nov 1994 08:49:37 GMT",  // day name
        "Sun, 06-Nov-94 08:49:37 GMT",    // RFC 850 needs the long day name
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov  6 08:49:37",
        "Nov  6 08:49:37 1994",
        "tomorrow",
    ])
    func invalidDates(_ value: String) {
        #expect(RetryAfter.parse(value, now: Self.now) == nil)
    }
}
