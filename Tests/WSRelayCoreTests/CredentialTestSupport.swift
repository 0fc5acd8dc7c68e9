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

/// Collects every log record (message, metadata, source) for inspection.
final class CredentialLogCapture: Sendable {
    private let lines = NIOLockedValueBox<[String]>([])

    var all: [String] { lines.withLockedValue { $0 } }
    var joined: String { all.joined(separator: "\n") }

    func count(containing text: String) -> Int { all.filter { $0.contains(text) }.count }

    func logger(_ label: String = "test", level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label) { [self] label in Handler(capture: self, label: label) }
        logger.logLevel = level
        return logger
    }

    fileprivate func append(_ line: String) { lines.withLockedValue { $0.append(line) } }

    struct Handler: LogHandler {
        let capture: CredentialLogCapture
        let label: String
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            if let extra = event.metadata { merged.merge(extra) { $1 } }
            let meta = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.append("\(event.level) \(label) \(event.message) \(meta) \(event.source) \(event.file)")
        }
    }
}

/// Polls `condition` until it holds or `timeout` passes; never sleeps longer than needed.
func credentialWait(
    timeout: Duration = .seconds(30), _ condition: @Sendable () async -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return await condition()
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

/// A fresh directory, removed on deinit.
final class CredentialTempDir {
    let path: String

    init() throws {
        var template = Array("/tmp/wsrelay-cred.XXXXXX".utf8CString)
        guard let result = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw POSIXError(.EIO)
        }
        path = String(cString: result)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    @discardableResult
    func write(_ name: String, _ contents: String, mode: mode_t = 0o600) throws -> String {
        let target = file(name)
        try contents.write(toFile: target, atomically: true, encoding: .utf8)
        chmod(target, mode)
        return target
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A JWT-shaped token (unsigned) with the given claims.
func credentialJWT(_ claims: String) -> String {
    func b64(_ s: String) -> String {
        Data(s.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
    return b64("{\"alg\":\"none\",\"typ\":\"JWT\"}") + "." + b64(claims) + ".sig"
}
