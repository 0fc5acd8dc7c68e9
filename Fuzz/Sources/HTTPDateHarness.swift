import Foundation
@testable import WSRelayCore

extension FuzzTargets {
    /// `Retry-After` values (delta-seconds and the three HTTP-date forms): never more than the one-hour cap,
    /// never negative, whatever the clock.
    static let httpDate = FuzzTarget(name: "retry-after", summary: "RetryAfter (delta-seconds, HTTP dates)") { bytes in
        let text = String(decoding: bytes, as: UTF8.self)
        // 2026-11-29, and a clock near the two-digit-year pivot and before 1970.
        for now in [Date(timeIntervalSince1970: 1_795_000_000), Date(timeIntervalSince1970: 4_102_444_800),
                    Date(timeIntervalSince1970: -1_000_000)] {
            if let wait = RetryAfter.parse(text, now: now) {
                check(wait >= .zero && wait <= RetryAfter.maximum, "wait \(wait) outside 0...\(RetryAfter.maximum)")
            }
        }
    }
}
