import Foundation
import Logging
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

/// The static, file and command providers against real files and processes.
@Suite struct CredentialProviderTests {
    @Test func staticProviderReReadsAReplacedFile() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("tok", "one\n")
        let provider = StaticTokenProvider(credential: "api", source: .file(path), environment: [:])
        #expect(try await provider.fetch().accessToken == "one")
        #expect(provider.sourceChanged() == nil)
        try dir.write("tok", "two-two\n")
        #expect(provider.sourceChanged() == .token)
        #expect(provider.sourceChanged() == nil)
        #expect(try await provider.fetch().accessToken == "two-two")
    }

    @Test func staticProviderFromSystemdCredentialAndJWTExpiry() async throws {
        let dir = try TemporaryDirectory()
        let jwt = credentialJWT(#"{"exp":1900000000}"#)
        try dir.write("api-token", jwt + "\n")
        let provider = StaticTokenProvider(credential: "api", source: .systemdCredential("api-token"),
                                           environment: ["CREDENTIALS_DIRECTORY": dir.path])
        let grant = try await provider.fetch()
        #expect(grant.accessToken == jwt)
        #expect(grant.expiresAt?.secondsSinceEpoch == 1_900_000_000)
    }

    @Test func fileProviderJSONCountsExpiresInFromMtime() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("tok.json", #"{"access_token":"from-json","expires_in":120}"#)
        var times = [timespec(tv_sec: 1_800_000_000, tv_nsec: 0), timespec(tv_sec: 1_800_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        let provider = FileTokenProvider(credential: "api", path: path, format: .json)
        let grant = try await provider.fetch()
        #expect(grant.accessToken == "from-json")
        #expect(grant.expiresAt?.secondsSinceEpoch == 1_800_000_120)
    }

    @Test func fileProviderTextAndMissingFile() async throws {
        let dir = try TemporaryDirectory()
        let provider = FileTokenProvider(credential: "api", path: dir.file("tok"), format: .text)
        do {
            _ = try await provider.fetch()
            Issue.record("read a missing file")
        } catch {
            #expect(error.kind == .sourceUnavailable)
        }
        try dir.write("tok", "appeared\r\n")
        #expect(provider.sourceChanged() == .token)
        #expect(try await provider.fetch().accessToken == "appeared")
    }

    @Test func commandProviderTextAndJSON() async throws {
        let text = CommandTokenProvider(credential: "api", argv: ["/bin/sh", "-c", "printf 'cmd-token\\n'"],
                                        timeout: .seconds(10), logger: Logger(label: "t"))
        #expect(try await text.fetch().accessToken == "cmd-token")
        let json = CommandTokenProvider(
            credential: "api", argv: ["/bin/sh", "-c", #"echo '{"access_token":"j","expires_at":"2030-01-01T00:00:00Z"}'"#],
            timeout: .seconds(10), logger: Logger(label: "t"))
        let grant = try await json.fetch()
        #expect(grant.accessToken == "j" && grant.expiresAt?.rfc3339 == "2030-01-01T00:00:00.000000Z")
    }

    @Test func commandFailureReportsExitStatusAndLogsCappedStderr() async throws {
        let logs = LogCapture()
        let long = String(repeating: "x", count: 2000)
        let provider = CommandTokenProvider(
            credential: "api", argv: ["/bin/sh", "-c", "echo 'bad things \(long)' >&2; exit 3"], timeout: .seconds(10),
            logger: logs.logger())
        do {
            _ = try await provider.fetch()
            Issue.record("expected a failure")
        } catch {
            #expect(error.kind == .commandFailed)
            #expect(error.message.contains("exit status 3"))
        }
        let warnings = logs.all.filter { $0.hasPrefix("warning") }
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("bad things") == true)
        #expect((warnings.first?.count ?? 0) < 1000)
    }

    @Test func commandStderrEchoingTheTokenIsRedacted() async throws {
        let logs = LogCapture()
        let provider = CommandTokenProvider(
            credential: "api", argv: ["/bin/sh", "-c", "echo 'minted tok-SECRET-42' >&2; echo tok-SECRET-42"],
            timeout: .seconds(10), logger: logs.logger())
        #expect(try await provider.fetch().accessToken == "tok-SECRET-42")
        #expect(!logs.joined.contains("tok-SECRET-42"))
        #expect(logs.joined.contains(SecretFingerprint.of("tok-SECRET-42")))
    }

    @Test func commandTimeoutKillsTheProcessGroup() async throws {
        let dir = try TemporaryDirectory()
        let pidFile = dir.file("child.pid")
        // The shell names its background child before it waits, so the test watches that very process
        // instead of sleeping and hoping that a marker file stays absent.
        let provider = CommandTokenProvider(
            credential: "api",
            argv: ["/bin/sh", "-c", "sleep 30 & echo $! > \(pidFile).new && mv \(pidFile).new \(pidFile); sleep 30"],
            timeout: .seconds(2), logger: Logger(label: "t"))
        let started = ContinuousClock.now
        do {
            _ = try await provider.fetch()
            Issue.record("expected a timeout")
        } catch {
            #expect(error.kind == .timedOut)
        }
        // Killed at its timeout rather than waited for: well before the 30 s its shell would take.
        #expect(ContinuousClock.now - started < .seconds(25))
        let child = try #require(dir.read("child.pid").flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) },
                                 "the shell names its background child well within its 2 s timeout")
        // The background child was killed with the group: gone at the next poll, while a survivor would
        // sleep its 30 s and run into the safety deadline.
        #expect(await waitUntil(timeout: .seconds(20)) { !processIsAlive(child) })
    }

    @Test func commandWhoseGrandchildHoldsStdoutStillReturns() async throws {
        let provider = CommandTokenProvider(
            credential: "api", argv: ["/bin/sh", "-c", "echo held-token; sleep 30 &"], timeout: .seconds(10),
            logger: Logger(label: "t"))
        // Waiting for the grandchild (30 s) would run into the 10 s timeout and throw; getting the token
        // proves the provider returned when the command itself exited.
        #expect(try await provider.fetch().accessToken == "held-token")
    }

    @Test func commandInheritsNoDescriptorButItsStandardThree() async throws {
        // Open without close-on-exec, as a descriptor passed by systemd or a supervisor would be.
        let inherited = open("/dev/null", O_RDONLY)
        try #require(inherited > 2)
        defer { close(inherited) }
        let provider = CommandTokenProvider(
            credential: "api",
            argv: ["/bin/sh", "-c", "if [ -e /proc/$$/fd/\(inherited) ]; then echo inherited; else echo clean; fi"],
            timeout: .seconds(10), logger: Logger(label: "t"))
        #expect(try await provider.fetch().accessToken == "clean", "descriptor \(inherited) reached the command")
    }

    @Test func missingProgram() async throws {
        let provider = CommandTokenProvider(credential: "api", argv: ["/nonexistent/token-helper"], timeout: .seconds(5),
                                            logger: Logger(label: "t"))
        do {
            _ = try await provider.fetch()
            Issue.record("expected a failure")
        } catch {
            #expect(error.kind == .commandFailed)
        }
    }
}
