import Foundation
import Logging
import NIOConcurrencyHelpers
@testable import WSRelayCore

/// A clock tests move by hand.
final class CredentialTestClock: Sendable {
    private let value: NIOLockedValueBox<WallClockTime>

    init(_ start: WallClockTime = WallClockTime(microsecondsSinceEpoch: 1_800_000_000_000_000)) {
        value = NIOLockedValueBox(start)
    }

    var now: WallClockTime { value.withLockedValue { $0 } }

    func advance(_ duration: Duration) {
        value.withLockedValue { $0 = $0.adding(duration) }
    }

    var function: @Sendable () -> WallClockTime { { [self] in self.now } }
}

/// Deterministic draws for the backoff jitter. The lowest draw comes from returning 1, not 0: with a
/// constant 0 the standard library's bounded sampling (Lemire's method) rejects forever for most ranges.
// Each holds a byte it never uses: ThreadSanitizer's inout instrumentation passes a meaningless address for
// an empty struct reached through generic code (`using: &generator`) and its runtime crashes on it (SEGV in
// __tsan::ExternalAccess; swiftlang/swift#35579 fixed only statically known-empty types).
struct CredentialZeroRandom: RandomNumberGenerator {
    private var unused: UInt8 = 0
    mutating func next() -> UInt64 { 1 }
}
struct CredentialMaxRandom: RandomNumberGenerator {
    private var unused: UInt8 = 0
    mutating func next() -> UInt64 { .max }
}

/// A provider whose results are scripted and whose fetches can be held open, to observe single flight.
final class ScriptedTokenProvider: TokenProvider {
    let type = "scripted"

    private struct State {
        var script: [Result<TokenGrant, CredentialError>] = []
        var fetches = 0
        var held = false
        var heldFetches: [CheckedContinuation<Void, Never>] = []
        var change: SourceChange?
        var inFlight = 0
        var maxInFlight = 0
    }

    private let state = NIOLockedValueBox(State())

    /// Results of the next fetches, in order; when the script is empty a fetch returns `token-N`.
    func enqueue(_ results: Result<TokenGrant, CredentialError>...) {
        state.withLockedValue { $0.script.append(contentsOf: results) }
    }

    var fetchCount: Int { state.withLockedValue { $0.fetches } }
    var maxConcurrentFetches: Int { state.withLockedValue { $0.maxInFlight } }
    var heldCount: Int { state.withLockedValue { $0.heldFetches.count } }

    /// Fetches from now on wait until `release()`.
    func hold() { state.withLockedValue { $0.held = true } }

    func release() {
        let waiting = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.held = false
            defer { state.heldFetches.removeAll() }
            return state.heldFetches
        }
        for continuation in waiting { continuation.resume() }
    }

    /// The next `sourceChanged()` reports `change`.
    func signalChange(_ change: SourceChange) { state.withLockedValue { $0.change = change } }

    func fetch() async throws(CredentialError) -> TokenGrant {
        let number = state.withLockedValue { state -> Int in
            state.fetches += 1
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
            return state.fetches
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let wait = state.withLockedValue { state -> Bool in
                if state.held { state.heldFetches.append(continuation) }
                return state.held
            }
            if !wait { continuation.resume() }
        }
        let next = state.withLockedValue { state -> Result<TokenGrant, CredentialError>? in
            state.inFlight -= 1
            return state.script.isEmpty ? nil : state.script.removeFirst()
        }
        return try (next ?? .success(TokenGrant(accessToken: "token-\(number)", expiresAt: nil))).get()
    }

    func sourceChanged() -> SourceChange? {
        state.withLockedValue { state in
            defer { state.change = nil }
            return state.change
        }
    }
}

func credentialSettings(
    _ name: String = "api", provider: CredentialProvider = .staticToken(.inline("x")),
    retryInitial: Duration = .seconds(1), retryMax: Duration = .seconds(300), skew: Duration = .seconds(60)
) -> AuthSettings {
    var settings = AuthSettings(name: name, provider: provider)
    settings.retryInitial = retryInitial
    settings.retryMax = retryMax
    settings.refreshSkew = skew
    return settings
}

/// A JWT-shaped token (unsigned) with the given claims.
func credentialJWT(_ claims: String) -> String {
    func b64(_ s: String) -> String {
        Data(s.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
    return b64("{\"alg\":\"none\",\"typ\":\"JWT\"}") + "." + b64(claims) + ".sig"
}
