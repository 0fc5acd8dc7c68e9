import Testing
import WSRelayTestSupport
@testable import WSRelayCore

@Suite("ReconnectBackoff")
struct ReconnectBackoffTests {
    private func settings(initial: Duration = .seconds(1), max: Duration = .seconds(60), multiplier: Double = 2) -> ReconnectSettings {
        var s = ReconnectSettings()
        s.initial = initial
        s.max = max
        s.multiplier = multiplier
        return s
    }

    @Test func ceilingGrowsExponentiallyAndIsCapped() {
        let backoff = ReconnectBackoff(settings())
        let expected: [Duration] = [1, 2, 4, 8, 16, 32, 60, 60, 60].map { .seconds($0) }
        for (n, ceiling) in expected.enumerated() {
            #expect(backoff.ceiling(forAttempt: n) == ceiling, "attempt \(n)")
        }
        #expect(backoff.ceiling(forAttempt: 10_000) == .seconds(60))
        #expect(backoff.ceiling(forAttempt: .max) == .seconds(60))
    }

    @Test func drawsStayWithinFullJitterBounds() {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<200 {
            var backoff = ReconnectBackoff(settings())
            for n in 0..<12 {
                let ceiling = backoff.ceiling(forAttempt: n)
                #expect(backoff.attempt == n)
                let delay = backoff.nextDelay(using: &rng)
                #expect(delay >= ReconnectBackoff.floor)
                #expect(delay <= ceiling)
                #expect(delay <= .seconds(60))
            }
        }
    }

    @Test func jitterSpreadsOverTheWholeWindow() {
        var rng = SplitMix64(seed: 7)
        var draws: [Duration] = []
        for _ in 0..<1000 {
            var backoff = ReconnectBackoff(settings())
            for _ in 0..<5 { _ = backoff.nextDelay(using: &rng) }
            draws.append(backoff.nextDelay(using: &rng))  // attempt 5: window [0, 32s]
        }
        #expect(draws.min()! < .seconds(2))
        #expect(draws.max()! > .seconds(30))
        #expect(draws.max()! <= .seconds(32))
    }

    @Test func averageDelayGrowsAcrossAttemptsUntilTheCap() {
        var rng = SplitMix64(seed: 99)
        var sums = [Double](repeating: 0, count: 9)
        for _ in 0..<500 {
            var backoff = ReconnectBackoff(settings())
            for n in 0..<9 {
                let d = backoff.nextDelay(using: &rng)
                sums[n] += Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
            }
        }
        for n in 1..<6 { #expect(sums[n] > sums[n - 1]) }
        // Capped at 60s: mean ≈ 30s from attempt 6 on.
        for n in 6..<9 { #expect(abs(sums[n] / 500 - 30) < 3) }
    }

    @Test func zeroDrawIsRaisedToTheFloor() {
        var zero = UpstreamZeroRandom()
        var backoff = ReconnectBackoff(settings())
        for _ in 0..<20 { #expect(backoff.nextDelay(using: &zero) == ReconnectBackoff.floor) }
        #expect(ReconnectBackoff.floor == .milliseconds(100))
    }

    @Test func maximumDrawReachesTheCeiling() {
        var high = UpstreamMaxRandom()
        var backoff = ReconnectBackoff(settings())
        let delays = (0..<8).map { _ in backoff.nextDelay(using: &high) }
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60].map { Duration.seconds($0) })
    }

    @Test func floorWinsOverTinySettings() {
        var high = UpstreamMaxRandom()
        var backoff = ReconnectBackoff(settings(initial: .milliseconds(10), max: .milliseconds(50)))
        #expect(backoff.nextDelay(using: &high) == .milliseconds(100))
        #expect(backoff.ceiling(forAttempt: 0) == .milliseconds(100))
    }

    @Test func resetStartsOver() {
        var rng = SplitMix64(seed: 1)
        var backoff = ReconnectBackoff(settings())
        for _ in 0..<6 { _ = backoff.nextDelay(using: &rng) }
        #expect(backoff.attempt == 6)
        backoff.reset()
        #expect(backoff.attempt == 0)
        #expect(backoff.nextDelay(using: &rng) <= .seconds(1))
        #expect(backoff.attempt == 1)
    }

    @Test func sameSeedSameSequence() {
        var a = SplitMix64(seed: 5), b = SplitMix64(seed: 5)
        var x = ReconnectBackoff(settings()), y = ReconnectBackoff(settings())
        let first = (0..<10).map { _ in x.nextDelay(using: &a) }
        let second = (0..<10).map { _ in y.nextDelay(using: &b) }
        #expect(first == second)
    }

    @Test func fractionalMultiplierAndNonWholeDurations() {
        let backoff = ReconnectBackoff(settings(initial: .milliseconds(500), max: .seconds(10), multiplier: 1.5))
        #expect(backoff.ceiling(forAttempt: 0) == .milliseconds(500))
        #expect(backoff.ceiling(forAttempt: 1) == .milliseconds(750))
        #expect(backoff.ceiling(forAttempt: 2) == .milliseconds(1125))
        #expect(backoff.ceiling(forAttempt: 50) == .seconds(10))
    }

    @Test func multiplierOfOneIsConstant() {
        let backoff = ReconnectBackoff(settings(initial: .seconds(3), multiplier: 1))
        #expect(backoff.ceiling(forAttempt: 0) == .seconds(3))
        #expect(backoff.ceiling(forAttempt: 1_000_000) == .seconds(3))
    }
}
