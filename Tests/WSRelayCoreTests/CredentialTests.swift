import Logging
import NIOConcurrencyHelpers
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

/// The `Credential` shell around the state machine, with a scripted provider.
@Suite struct CredentialTests {
    func make(
        _ provider: ScriptedTokenProvider, logs: LogCapture = .init(), clock: CredentialTestClock? = nil,
        retryInitial: Duration = .seconds(1), retryMax: Duration = .seconds(300), skew: Duration = .seconds(60)
    ) -> Credential {
        let settings = credentialSettings(retryInitial: retryInitial, retryMax: retryMax, skew: skew)
        if let clock {
            return Credential(settings: settings, provider: provider, logger: logs.logger(), clock: clock.function)
        }
        return Credential(settings: settings, provider: provider, logger: logs.logger())
    }

    func unreachable() -> CredentialError { CredentialError(.endpointUnreachable, credential: "api", "connection refused") }

    @Test func fiftyConcurrentCallersShareOneRefresh() async throws {
        let provider = ScriptedTokenProvider()
        provider.hold()
        let credential = make(provider)
        try await withThrowingTaskGroup(of: IssuedToken.self) { group in
            for _ in 0..<50 { group.addTask { try await credential.token() } }
            #expect(await waitUntil { credential.waiterCount == 50 && provider.heldCount == 1 })
            #expect(provider.fetchCount == 1)
            provider.release()
            var tokens: [IssuedToken] = []
            for try await token in group { tokens.append(token) }
            #expect(tokens.count == 50)
            #expect(Set(tokens.map(\.value)) == ["token-1"])
            #expect(tokens.allSatisfy { $0.generation == 1 })
        }
        #expect(provider.fetchCount == 1 && provider.maxConcurrentFetches == 1)
        await credential.shutdown()
    }

    @Test func concurrentRejectionsOfOneGenerationRefreshOnce() async throws {
        let provider = ScriptedTokenProvider()
        let credential = make(provider)
        let first = try await credential.token()
        #expect(first.generation == 1)
        provider.hold()
        try await withThrowingTaskGroup(of: IssuedToken.self) { group in
            for _ in 0..<20 { group.addTask { try await credential.token(rejected: first.generation) } }
            #expect(await waitUntil { credential.waiterCount == 20 && provider.heldCount == 1 })
            provider.release()
            for try await token in group { #expect(token.generation == 2 && token.value == "token-2") }
        }
        #expect(provider.fetchCount == 2)
        // Another upstream reporting the old generation late gets the new token without a refresh.
        #expect(try await credential.token(rejected: first.generation).generation == 2)
        #expect(try await credential.token().generation == 2)
        #expect(provider.fetchCount == 2)
        await credential.shutdown()
    }

    @Test func failuresFailFastAndTheTimerRetriesWithGrowingDelays() async throws {
        let provider = ScriptedTokenProvider()
        provider.enqueue(.failure(unreachable()), .failure(unreachable()), .failure(unreachable()))
        let logs = LogCapture()
        let credential = make(provider, logs: logs, retryInitial: .milliseconds(400), retryMax: .milliseconds(1600))
        let start = WallClockTime.now()
        var retryAt = start
        do {
            _ = try await credential.token()
            Issue.record("expected a failure")
        } catch {
            #expect(error.kind == .endpointUnreachable)
            retryAt = try #require(error.retryAt)
            #expect(retryAt >= start.adding(.milliseconds(200)))
        }
        // While backing off (until the announced retry time), callers fail at once without another fetch.
        var calls = 0
        while calls < 20, WallClockTime.now() < retryAt {
            calls += 1
            await #expect(throws: CredentialError.self) { try await credential.token() }
        }
        let fetchesDuringBackoff = provider.fetchCount
        if WallClockTime.now() < retryAt {
            #expect(fetchesDuringBackoff == 1, "\(calls) calls during backoff caused fetches")
        }
        #expect(fetchesDuringBackoff <= 2)
        // The timer retries on its own (3 failures, then success).
        #expect(await waitUntil { provider.fetchCount == 4 })
        #expect(await waitUntil { credential.status().state == "valid" })
        #expect(try await credential.token().value == "token-4")
        #expect(logs.count(containing: "credential refresh failed") == 3)
        #expect(credential.status().refreshes == { var c = CredentialStatus.RefreshCounts(); c.succeeded = 1; c.failed = 3; return c }())
        await credential.shutdown()
    }

    @Test func invalidGrantIsLoggedOnceAndSIGHUPResumes() async throws {
        let provider = ScriptedTokenProvider()
        let rejected = CredentialError(.grantRejected, credential: "api", "token endpoint answered HTTP 400 (invalid_grant)",
                                       httpStatus: 400, oauthError: "invalid_grant")
        provider.enqueue(.failure(rejected))
        let logs = LogCapture()
        let credential = make(provider, logs: logs, retryInitial: .milliseconds(10), retryMax: .seconds(300))
        await #expect(throws: CredentialError.self) { try await credential.token() }
        #expect(credential.status().state == "failed: invalid_grant")
        for _ in 0..<10 {
            do {
                _ = try await credential.token()
                Issue.record("expected a failure")
            } catch {
                #expect(error.oauthError == "invalid_grant")
                #expect(error.retryAt != nil)
            }
        }
        #expect(provider.fetchCount == 1)  // slow retry only, every retry_max
        #expect(logs.all.filter { $0.hasPrefix("error") }.count == 1)

        credential.resumeFailed()
        #expect(await waitUntil { credential.status().state == "valid" })
        #expect(try await credential.token().value == "token-2")
        #expect(logs.count(containing: "credential recovered") == 1)
        #expect(logs.all.filter { $0.hasPrefix("error") }.count == 1)
        await credential.shutdown()
    }

    @Test func changedSourceResumesAFailedCredential() async throws {
        let provider = ScriptedTokenProvider()
        provider.enqueue(.failure(CredentialError(.grantRejected, credential: "api", "HTTP 401", httpStatus: 401)))
        let credential = make(provider)
        await #expect(throws: CredentialError.self) { try await credential.token() }
        await #expect(throws: CredentialError.self) { try await credential.token() }
        #expect(provider.fetchCount == 1)
        provider.signalChange(.refreshInputs)
        #expect(try await credential.token().value == "token-2")
        await credential.shutdown()
    }

    @Test func changedTokenFileIsReReadBeforeUse() async throws {
        let provider = ScriptedTokenProvider()
        let credential = make(provider)
        #expect(try await credential.token().value == "token-1")
        #expect(try await credential.token().value == "token-1")
        provider.signalChange(.token)
        let next = try await credential.token()
        #expect(next.value == "token-2" && next.generation == 2)
        await credential.shutdown()
    }

    @Test func expiredCachedTokenIsRefreshedBeforeItIsHandedOut() async throws {
        let clock = CredentialTestClock()
        let provider = ScriptedTokenProvider()
        provider.enqueue(
            .success(TokenGrant(accessToken: "first", expiresAt: clock.now.adding(.seconds(600)))),
            .success(TokenGrant(accessToken: "second", expiresAt: clock.now.adding(.seconds(1200))))
        )
        let credential = make(provider, clock: clock, skew: .seconds(60))
        #expect(try await credential.token().value == "first")
        clock.advance(.seconds(500))
        #expect(try await credential.token().value == "first")
        clock.advance(.seconds(50))  // 50 s before expiry: inside the skew
        let refreshed = try await credential.token()
        #expect(refreshed.value == "second" && refreshed.generation == 2)
        #expect(provider.fetchCount == 2)
        await credential.shutdown()
    }

    @Test func forceRefreshReplacesAValidToken() async throws {
        let provider = ScriptedTokenProvider()
        let credential = make(provider)
        #expect(try await credential.token().generation == 1)
        #expect(try await credential.forceRefresh().generation == 2)
        #expect(try await credential.token().generation == 2)
        await credential.shutdown()
    }

    @Test func aCancelledWaiterLeavesTheOthersWaiting() async throws {
        let provider = ScriptedTokenProvider()
        provider.hold()
        let credential = make(provider)
        let cancelled = Task { try await credential.token() }
        let patient = Task { try await credential.token() }
        #expect(await waitUntil { credential.waiterCount == 2 })
        cancelled.cancel()
        do {
            _ = try await cancelled.value
            Issue.record("expected cancellation")
        } catch let error as CredentialError {
            #expect(error.kind == .cancelled)
        }
        #expect(credential.waiterCount == 1)
        provider.release()
        #expect(try await patient.value.value == "token-1")
        await credential.shutdown()
    }

    @Test func shutdownFailsWaiters() async throws {
        let provider = ScriptedTokenProvider()
        provider.hold()
        let credential = make(provider)
        let waiting = Task { try await credential.token() }
        #expect(await waitUntil { credential.waiterCount == 1 })
        await credential.shutdown()
        do {
            _ = try await waiting.value
            Issue.record("expected shutdown")
        } catch let error as CredentialError {
            #expect(error.kind == .shutdown)
        }
        provider.release()
        await #expect(throws: CredentialError.self) { try await credential.token() }
    }

    @Test func storeLooksUpAndReportsCredentials() async throws {
        let a = Credential(settings: credentialSettings("a"), provider: ScriptedTokenProvider(), logger: Logger(label: "t"))
        let b = Credential(settings: credentialSettings("b"), provider: ScriptedTokenProvider(), logger: Logger(label: "t"))
        let store = CredentialStore(credentials: [a, b])
        #expect(store.names == ["a", "b"])
        #expect(store.credential(named: "b") === b)
        #expect(store.credential(named: "c") == nil)
        _ = try await a.token()
        let snapshot = store.snapshot()
        #expect(snapshot.map(\.state) == ["valid", "not yet obtained"])
        #expect(snapshot[0].tokenFingerprint == SecretFingerprint.of("token-1"))
        #expect(!snapshot[0].description.contains("token-1"))
        await store.shutdown()
    }
}
