import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

/// Credentials against a real HTTP token endpoint on 127.0.0.1.
@Suite(.mayBlock) struct CredentialEndpointTests {
    // MARK: - Helpers

    /// The request timeout is a safety net here (30 s; on a machine loaded by parallel builds the first request once took over 5 s
    /// request); the tests of timeouts set their own.
    func oauth2(
        _ url: String, refreshToken: SecretSource? = .inline("rt-initial"), name: String = "api",
        timeout: Duration = .seconds(30), retryInitial: Duration = .seconds(1), retryMax: Duration = .seconds(300),
        configure: (inout OAuth2Settings) -> Void = { _ in }
    ) -> AuthSettings {
        var o = OAuth2Settings(tokenURL: url)
        o.refreshToken = refreshToken
        configure(&o)
        var settings = AuthSettings(name: name, provider: .oauth2(o))
        settings.timeout = timeout
        settings.retryInitial = retryInitial
        settings.retryMax = retryMax
        return settings
    }

    func store(_ settings: [AuthSettings], stateDir: String, logs: LogCapture = .init(), environment: [String: String] = [:])
        -> CredentialStore
    {
        CredentialStore(settings: settings, stateDir: stateDir, environment: environment,
                        group: MultiThreadedEventLoopGroup.singleton, logger: logs.logger("wsrelay.test"))
    }

    // MARK: - oauth2 requests

    @Test func refreshTokenGrantSendsTheFormBody() async throws {
        let endpoint = try await TokenEndpoint.start()
        let dir = try TemporaryDirectory()
        let rtFile = try dir.write("rt", "rt-from-file\n")
        let store = store([oauth2(endpoint.url, refreshToken: .file(rtFile)) {
            $0.clientID = "client one"
            $0.clientSecret = .inline("s3cr&t")
            $0.scope = "read write"
            $0.audience = "https://api.example"
        }], stateDir: dir.file("state"))
        let credential = try #require(store.credential(named: "api"))

        let token = try await credential.token()
        #expect(token.value == "access-1" && token.generation == 1)
        let expires = try #require(token.expiresAt)
        let lifetime = expires.duration(since: .now())
        #expect(lifetime > .seconds(3570) && lifetime <= .seconds(3600))

        let request = try #require(endpoint.requests.first)
        #expect(request.method == "POST" && request.path == "/token")
        #expect(request.header("Content-Type") == "application/x-www-form-urlencoded")
        #expect(request.header("Accept") == "application/json")
        #expect(request.header("Authorization") == nil)
        #expect(request.form == [
            "grant_type": "refresh_token", "refresh_token": "rt-from-file", "client_id": "client one",
            "client_secret": "s3cr&t", "scope": "read write", "audience": "https://api.example",
        ])
        // The token is cached: no second request.
        #expect(try await credential.token().value == "access-1")
        #expect(endpoint.requestCount == 1)
        await store.shutdown()
        await endpoint.shutdown()
    }

    @Test func basicClientAuthentication() async throws {
        let endpoint = try await TokenEndpoint.start()
        let dir = try TemporaryDirectory()
        let store = store([oauth2(endpoint.url) {
            $0.clientID = "my:client"
            $0.clientSecret = .environment("CLIENT_SECRET")
            $0.clientAuth = .basic
        }], stateDir: dir.path, environment: ["CLIENT_SECRET": "p@ss word"])
        _ = try await #require(store.credential(named: "api")).token()
        let request = try #require(endpoint.requests.first)
        let basic = try #require(request.basicCredentials)
        // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
        #expect(basic.user == "my%3Aclient" && basic.password == "p%40ss%20word")
        #expect(request.form == ["grant_type": "refresh_token", "refresh_token": "rt-initial"])
        await store.shutdown()
        await endpoint.shutdown()
    }

    @Test func clientCredentialsGrant() async throws {
        let endpoint = try await TokenEndpoint.start()
        let dir = try TemporaryDirectory()
        let store = store([oauth2(endpoint.url, refreshToken: nil) {
            $0.grant = .clientCredentials
            $0.clientID = "svc"
            $0.clientSecret = .inline("svc-secret")
        }], stateDir: dir.path)
        _ = try await #require(store.credential(named: "api")).token()
        #expect(endpoint.requests.first?.form == [
            "grant_type": "client_credentials", "client_id": "svc", "client_secret": "svc-secret",
        ])
        await store.shutdown()
        await endpoint.shutdown()
    }

    @Test func httpJSONProvider() async throws {
        let endpoint = try await TokenEndpoint.start()
        endpoint.enqueue(.json(status: 200, #"{"data":{"jwt":"hj-1","ttl":120},"next":"hj-refresh-2"}"#))
        let dir = try TemporaryDirectory()
        var h = HTTPJSONSettings(url: endpoint.url(path: "/auth/refresh"))
        h.refreshToken = .inline("hj-refresh-1")
        h.headers = [HeaderField(name: "X-Api-Key", value: "key-123")]
        h.tokenField = "data.jwt"
        h.expiresInField = "data.ttl"
        h.refreshTokenField = "next"
        let store = store([AuthSettings(name: "hj", provider: .httpJSON(h))], stateDir: dir.path)
        let token = try await #require(store.credential(named: "hj")).token()
        #expect(token.value == "hj-1")
        let request = try #require(endpoint.requests.first)
        #expect(request.path == "/auth/refresh")
        #expect(request.header("Content-Type") == "application/json" && request.header("X-Api-Key") == "key-123")
        #expect(request.jsonStrings == ["refresh_token": "hj-refresh-1"])
        #expect(dir.read("credentials/hj.refresh_token")?.contains("hj-refresh-2") == true)
        await store.shutdown()
        await endpoint.shutdown()
    }

    // MARK: - Rotation

    @Test func rotatedRefreshTokenIsPersistedAndUsedAfterARestart() async throws {
        let endpoint = try await TokenEndpoint.start()
        let dir = try TemporaryDirectory()
        let stateDir = dir.file("state")
        let rtFile = try dir.write("rt", "rt-0")
        let settings = [oauth2(endpoint.url, refreshToken: .file(rtFile))]
        endpoint.enqueue(.token(access: "a-1", refresh: "rt-1"), .token(access: "a-2", refresh: "rt-2"))

        let first = store(settings, stateDir: stateDir)
        #expect(try await #require(first.credential(named: "api")).token().value == "a-1")
        let saved = stateDir + "/credentials/api.refresh_token"
        var st = stat()
        #expect(stat(saved, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(stat(stateDir + "/credentials", &st) == 0 && st.st_mode & 0o777 == 0o700)
        #expect(dir.read("state/credentials/api.refresh_token")?.contains("rt-1") == true)
        // Within the same process the rotated token is used from then on.
        #expect(try await #require(first.credential(named: "api")).forceRefresh().value == "a-2")
        #expect(endpoint.requests.map { $0.form["refresh_token"] } == ["rt-0", "rt-1"])
        await first.shutdown()

        // "Restart": a new store prefers the persisted token over the configured one.
        let second = store(settings, stateDir: stateDir)
        _ = try await #require(second.credential(named: "api")).token()
        #expect(endpoint.requests.last?.form["refresh_token"] == "rt-2")
        await second.shutdown()

        // The operator re-provisions: the configured token changed since it was persisted, so it wins.
        try dir.write("rt", "rt-reprovisioned")
        let third = store(settings, stateDir: stateDir)
        _ = try await #require(third.credential(named: "api")).token()
        #expect(endpoint.requests.last?.form["refresh_token"] == "rt-reprovisioned")
        await third.shutdown()
        await endpoint.shutdown()
    }

    // MARK: - Single flight

    @Test func twentyConcurrentRejectionsCauseOneRequest() async throws {
        let endpoint = try await TokenEndpoint.start()
        let dir = try TemporaryDirectory()
        let store = store([oauth2(endpoint.url)], stateDir: dir.path)
        let credential = try #require(store.credential(named: "api"))
        let first = try await credential.token()
        #expect(endpoint.requestCount == 1)

        endpoint.enqueue(.delayed(.milliseconds(200), .token(access: "after-rejection")))
        let tokens = try await withThrowingTaskGroup(of: IssuedToken.self) { group in
            for _ in 0..<20 { group.addTask { try await credential.token(rejected: first.generation) } }
            var all: [IssuedToken] = []
            for try await token in group { all.append(token) }
            return all
        }
        #expect(tokens.count == 20)
        #expect(tokens.allSatisfy { $0.value == "after-rejection" && $0.generation == 2 })
        #expect(endpoint.requestCount == 2)
        // Late reporters of generation 1 get generation 2 without a request.
        #expect(try await credential.token(rejected: first.generation).generation == 2)
        #expect(endpoint.requestCount == 2)
        await store.shutdown()
        await endpoint.shutdown()
    }

    // MARK: - Failures

    @Test func endpointDownBacksOffWithoutATightLoop() async throws {
        let port = try await TokenEndpoint.unusedPort()
        let dir = try TemporaryDirectory()
        let logs = LogCapture()
        let store = store([oauth2("http://127.0.0.1:\(port)/token", retryInitial: .milliseconds(100),
                                  retryMax: .milliseconds(800))], stateDir: dir.path, logs: logs)
        let credential = try #require(store.credential(named: "api"))

        var errors: [CredentialError] = []
        var calls = 0
        let start = ContinuousClock.now
        // The window opens after the first (refused) call: how long that takes is not what is tested.
        await #expect(throws: CredentialError.self) { try await credential.token() }
        calls += 1
        // 200 calls 5 ms apart (about 1 s on a quiet machine; the 20 s bound is a safety net): enough calls
        // that one attempt per call would show, however slowly a loaded machine makes them.
        let window = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < window, calls < 200 {
            calls += 1
            do {
                _ = try await credential.token()
                Issue.record("got a token from a closed port")
                break
            } catch {
                errors.append(error)
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let attempts = Int(credential.status().refreshes.failed)
        let elapsed = ContinuousClock.now - start
        // Many calls, but attempts are spaced by at least 50, 100, 200, 400, 400... ms: never one per call,
        // and never more than the backoff schedule allows in the time that actually passed.
        #expect(attempts >= 2, "the endpoint was not retried")
        #expect(attempts < calls, "one refresh attempt per call is a tight loop")
        #expect(attempts <= Int(elapsed / .milliseconds(50)) + 1, "attempts: \(attempts) in \(elapsed)")
        #expect(errors.allSatisfy { $0.kind == .endpointUnreachable && $0.retryAt != nil })
        // The announced retry times are distinct per attempt and the backoff grows: the first delay is 50-100 ms,
        // the third gap at least 200 ms. (Gaps also hold how late the test's next call came, which a loaded
        // machine stretches, so they are bounded from below only.)
        var retryTimes: [WallClockTime] = []
        for error in errors where retryTimes.last != error.retryAt { retryTimes.append(error.retryAt!) }
        let gaps = zip(retryTimes, retryTimes.dropFirst()).map { $1.duration(since: $0) }
        #expect(gaps.allSatisfy { $0 >= .milliseconds(50) })
        if gaps.count >= 3 { #expect(gaps[2] >= .milliseconds(200), "\(gaps)") }
        let state = credential.status().state
        #expect(state.hasPrefix("backing off until") || state == "refreshing", "\(state)")
        #expect(await waitUntil { logs.count(containing: "credential refresh failed") >= attempts })
        await store.shutdown()
    }

    @Test func serverErrorIsTransientAndHangTimesOut() async throws {
        let endpoint = try await TokenEndpoint.start()
        endpoint.enqueue(.status(500, body: "oops"), .hang)
        // Every later request gets the same token: under load its answer may itself pass the 300 ms timeout and
        // be asked for again (a CI run then held the default `access-4`).
        endpoint.setDefault { _ in .token(access: "finally") }
        let dir = try TemporaryDirectory()
        let store = store([oauth2(endpoint.url, timeout: .milliseconds(300), retryInitial: .milliseconds(50),
                                  retryMax: .milliseconds(100))], stateDir: dir.path)
        let credential = try #require(store.credential(named: "api"))
        do {
            _ = try await credential.token()
            Issue.record("expected HTTP 500")
        } catch {
            #expect(error.kind == .endpointError && error.httpStatus == 500)
        }
        // The timer retries: the hanging request times out, then the third succeeds.
        #expect(await waitUntil { credential.status().state == "valid" })
        #expect(try await credential.token().value == "finally")
        // 500, the hang, then the token; on a loaded machine the token's answer may itself pass the 300 ms
        // timeout once more before it gets through, so at least these.
        #expect(endpoint.requestCount >= 3)
        #expect(credential.status().refreshes.failed >= 2)
        // Every request but the last failed; an attempt that timed out before the endpoint even accepted it
        // (a loaded machine) is a failure the endpoint never counted.
        #expect(credential.status().refreshes.failed >= UInt64(endpoint.requestCount - 1))
        #expect(credential.status().lastError?.contains("did not answer within") == true)
        await store.shutdown()
        await endpoint.shutdown()
    }

    @Test func invalidGrantFailsUntilTheRefreshTokenFileChanges() async throws {
        let endpoint = try await TokenEndpoint.start()
        endpoint.enqueue(.oauthError(status: 400, error: "invalid_grant", description: "Token is not active"))
        let dir = try TemporaryDirectory()
        let rtFile = try dir.write("rt", "rt-revoked")
        let logs = LogCapture()
        let store = store([oauth2(endpoint.url, refreshToken: .file(rtFile), retryInitial: .milliseconds(10))],
                          stateDir: dir.path, logs: logs)
        let credential = try #require(store.credential(named: "api"))
        do {
            _ = try await credential.token()
            Issue.record("expected invalid_grant")
        } catch {
            #expect(error.kind == .grantRejected && error.oauthError == "invalid_grant" && error.httpStatus == 400)
            #expect(error.description.contains("Token is not active"))
        }
        #expect(store.snapshot().first?.state == "failed: invalid_grant")
        for _ in 0..<20 {
            await #expect(throws: CredentialError.self) { try await credential.token() }
        }
        #expect(endpoint.requestCount == 1)
        // The credential resumes its callers before it logs the outcome: poll for the line.
        #expect(await waitUntil { logs.count(level: .error) == 1 })

        // The operator puts a new refresh token in place: the next request retries at once and recovers.
        try dir.write("rt", "rt-fresh")
        let token = try await credential.token()
        #expect(token.value == "access-2")
        #expect(endpoint.requests.last?.form["refresh_token"] == "rt-fresh")
        #expect(store.snapshot().first?.state == "valid")
        #expect(await waitUntil { logs.count(containing: "credential recovered") == 1 })
        #expect(logs.count(level: .error) == 1)
        await store.shutdown()
        await endpoint.shutdown()
    }

    @Test func sighupResumesAFailedCredential() async throws {
        let endpoint = try await TokenEndpoint.start()
        endpoint.enqueue(.oauthError(status: 401, error: "invalid_client"))
        let dir = try TemporaryDirectory()
        let store = store([oauth2(endpoint.url)], stateDir: dir.path)
        let credential = try #require(store.credential(named: "api"))
        await #expect(throws: CredentialError.self) { try await credential.token() }
        #expect(store.snapshot().first?.state == "failed: invalid_client")
        store.resumeFailed()
        #expect(await waitUntil { store.snapshot().first?.state == "valid" })
        #expect(endpoint.requestCount == 2)
        await store.shutdown()
        await endpoint.shutdown()
    }

    @Test func expiredCachedTokenIsRefreshedBeforeItIsHandedOut() async throws {
        let endpoint = try await TokenEndpoint.start()
        // Lifetime 6 s: the effective skew is min(60 s, 6 s / 2) = 3 s, so the token is handed out as fresh for
        // its first 3 s (the two immediate calls) and refreshed after that. The credential reads a clock the
        // test moves, so "after that" needs no wall-clock wait.
        endpoint.enqueue(.token(access: "short-lived", expiresIn: 6), .token(access: "replacement", expiresIn: 3600))
        let dir = try TemporaryDirectory()
        let now = NIOLockedValueBox(WallClockTime.now())
        let settings = oauth2(endpoint.url)
        let logger = LogCapture().logger("wsrelay.test")
        let provider = CredentialStore.makeProvider(settings, stateDir: dir.path, environment: [:],
                                                    group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let credential = Credential(settings: settings, provider: provider, logger: logger,
                                    clock: { now.withLockedValue { $0 } })
        let first = try await credential.token()
        #expect(first.value == "short-lived")
        #expect(try await credential.token().value == "short-lived")  // still fresh
        #expect(endpoint.requestCount == 1)
        let expires = try #require(first.expiresAt)
        now.withLockedValue { $0 = expires.adding(.seconds(-1)) }  // inside the skew window now
        let next = try await credential.token()
        #expect(next.value == "replacement" && next.generation == 2)
        #expect(endpoint.requestCount == 2)
        await credential.shutdown()
        await endpoint.shutdown()
    }

    // MARK: - Secrets

    @Test func noSecretAppearsInLogsErrorsOrStatus() async throws {
        let endpoint = try await TokenEndpoint.start()
        let refresh0 = "RT0-5ecret-aaaaaaaaaaaa"
        let refresh1 = "RT1-5ecret-bbbbbbbbbbbb"
        let clientSecret = "CS-5ecret-cccccccccccc"
        let access1 = "AT1-5ecret-dddddddddddd"
        let access2 = "AT2-5ecret-eeeeeeeeeeee"
        let apiKey = "KEY-5ecret-ffffffffffff"
        let hjRefresh = "HJ-5ecret-gggggggggggg"
        let secrets = [refresh0, refresh1, clientSecret, access1, access2, apiKey, hjRefresh]
        endpoint.enqueue(
            .token(access: access1, refresh: refresh1, expiresIn: 3600),
            .status(503, body: #"{"error":"temporarily_unavailable","error_description":"echo \#(refresh1)"}"#),
            .oauthError(status: 400, error: "invalid_grant", description: "refresh token \(refresh1) is revoked"),
            .token(access: access2, refresh: nil, expiresIn: 3600),
            .json(status: 401, #"{"error":"unauthorized","error_description":"bad key \#(apiKey)"}"#)
        )
        let dir = try TemporaryDirectory()
        let logs = LogCapture()
        var h = HTTPJSONSettings(url: endpoint.url(path: "/hj"))
        h.refreshToken = .inline(hjRefresh)
        h.headers = [HeaderField(name: "X-Api-Key", value: apiKey)]
        let store = store([
            // The test drives every request with forceRefresh (which bypasses the backoff); a retry timer
            // firing in between would take the next scripted answer out of turn, so it is far away.
            oauth2(endpoint.url, refreshToken: .inline(refresh0), retryInitial: .seconds(60)) {
                $0.clientID = "c"
                $0.clientSecret = .inline(clientSecret)
            },
            AuthSettings(name: "hj", provider: .httpJSON(h)),
        ], stateDir: dir.path, logs: logs)
        let credential = try #require(store.credential(named: "api"))
        var texts: [String] = []

        let first = try await credential.token()  // success + rotation
        texts.append("\(first)")
        texts.append(String(reflecting: first))
        do { _ = try await credential.forceRefresh() } catch { texts += ["\(error)", error.message, String(reflecting: error)] }  // 503
        do { _ = try await credential.forceRefresh() } catch { texts += ["\(error)", error.message, String(reflecting: error)] }  // invalid_grant
        texts += store.snapshot().map { "\($0) \(String(reflecting: $0))" }
        texts.append(String(reflecting: try await credential.forceRefresh()))  // recovers
        do { _ = try await #require(store.credential(named: "hj")).token() } catch { texts += ["\(error)", String(reflecting: error)] }
        texts += store.snapshot().map { "\($0) \(String(reflecting: $0))" }
        // Five requests; on a loaded machine the last one (hj) may time out before the endpoint reads it, and
        // its error text is checked like the others.
        #expect((4...5).contains(endpoint.requestCount), "\(endpoint.requestCount) requests")
        await store.shutdown()
        await endpoint.shutdown()

        let everything = (texts + logs.all).joined(separator: "\n")
        #expect(!logs.all.isEmpty)
        for secret in secrets {
            #expect(!everything.contains(secret), "secret \(secret) leaked")
        }
        // The fingerprints are there instead.
        #expect(everything.contains(SecretFingerprint.of(access1)))
        #expect(everything.contains(SecretFingerprint.of(refresh1)))
        #expect(everything.contains("invalid_grant"))
    }
}
