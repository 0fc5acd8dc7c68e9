import Foundation
import Testing
@testable import WSRelayCore

/// The probe's verdicts as values: no sockets, no TLS.
@Suite struct ProbeReportTests {
    let ms = Duration.milliseconds(1)

    @Test func usableOnlyWhenTheUpgradeHappenedAndNothingFailed() {
        var report = ProbeReport(target: "ws://127.0.0.1:1/")
        report.stages = [ProbeStage(.dns, .ok, elapsed: ms, "127.0.0.1"), ProbeStage(.tcp, .ok, elapsed: ms, "connected")]
        #expect(!report.usable)
        #expect(report.exitStatus == ProbeExitStatus.stageFailed)

        report.stages.append(ProbeStage(.upgrade, .ok, elapsed: ms, "HTTP/1.1 101"))
        report.stages.append(ProbeStage(.message, .warning, elapsed: ms, "none within 5s"))
        #expect(report.usable)
        #expect(report.exitStatus == 0)
        #expect(report.conclusion == "usable, with a warning (first message)")

        report.stages.append(ProbeStage(.ping, .failed, elapsed: ms, "no pong within 10s"))
        #expect(!report.usable)
        #expect(report.failedStage?.kind == .ping)
        #expect(report.conclusion == "not usable: ping failed: no pong within 10s")
    }

    @Test func allPassed() {
        let report = ProbeReport(target: "x", stages: [ProbeStage(.upgrade, .ok, elapsed: ms, "101")])
        #expect(report.conclusion == "usable: every stage passed")
    }

    @Test func redactionReachesSummaryAndDetails() {
        let stage = ProbeStage(.message, .ok, elapsed: ms, "echo sekrit sekrit", details: [.init("preview", "{\"token\":\"sekrit\"}")])
            .redacting("sekrit", with: "<token sha256:1>")
        #expect(stage.summary == "echo <token sha256:1> <token sha256:1>")
        #expect(stage.details[0].value == "{\"token\":\"<token sha256:1>\"}")
    }

    // MARK: - Rendering

    @Test func elapsedFormatting() {
        #expect(ProbeRendering.formatElapsed(.microseconds(420)) == "0.4ms")
        #expect(ProbeRendering.formatElapsed(.microseconds(9_960)) == "10.0ms")
        #expect(ProbeRendering.formatElapsed(.milliseconds(12)) == "12ms")
        #expect(ProbeRendering.formatElapsed(.milliseconds(1_250)) == "1.25s")
        #expect(ProbeRendering.formatElapsed(.milliseconds(5_001)) == "5.00s")
    }

    @Test func stageLineShowsVerdictTitleTimeAndDetails() {
        let text = ProbeRendering.text(ProbeStage(.tls, .failed, elapsed: .milliseconds(3), "unknown CA",
                                                  details: [.init("issuer", "CN=test CA"), .init("SNI", "localhost")]))
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("  FAIL  TLS "))
        #expect(lines[0].hasSuffix("3.0ms  unknown CA"))
        let column = lines[0].count - "unknown CA".count
        #expect(lines[1].hasPrefix(String(repeating: " ", count: column) + "issuer: CN=test CA"))
        #expect(lines[2].hasPrefix(String(repeating: " ", count: column) + "SNI:    localhost"))
    }

    @Test func jsonIsValidAndComplete() throws {
        let report = ProbeReport(target: "feed: ws://h/\"q\"", stages: [
            ProbeStage(.dns, .ok, elapsed: .microseconds(1_500), "h: 127.0.0.1"),
            ProbeStage(.upgrade, .failed, elapsed: ms, "HTTP/1.1 401: credentials rejected", details: [.init("WWW-Authenticate", "Bearer")]),
        ])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(ProbeRendering.json(report).utf8)) as? [String: Any])
        #expect(object["target"] as? String == "feed: ws://h/\"q\"")
        #expect(object["usable"] as? Bool == false)
        #expect(object["exit_status"] as? Int == 1)
        #expect(object["failed_stage"] as? String == "upgrade")
        let stages = try #require(object["stages"] as? [[String: Any]])
        #expect(stages.count == 2)
        #expect(stages[0]["elapsed_ms"] as? Double == 1.5)
        #expect((stages[1]["details"] as? [[String: String]])?.first?["name"] == "WWW-Authenticate")
    }

    // MARK: - Upgrade response

    static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    @Test func acceptValueFromRFC6455() {
        #expect(WebSocketAccept.expected(forKey: Self.key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    func check(_ status: Int, _ headers: [(String, String)], offered: [String] = [], credentials: Bool = false) -> ProbeStage {
        UpgradeResponseCheck(status: status, reason: "R", headers: headers)
            .stage(elapsed: ms, key: Self.key, offered: offered, hasCredentials: credentials)
    }

    @Test func switchingProtocolsWithTheRightAccept() {
        let stage = check(101, [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                                ("Sec-WebSocket-Protocol", "v2"), ("Server", "nginx")], offered: ["v1", "v2"])
        #expect(stage.verdict == .ok)
        #expect(stage.summary.contains("Sec-WebSocket-Accept matches"))
        #expect(stage.summary.contains("subprotocol \"v2\""))
        #expect(stage.details.contains { $0.name == "Sec-WebSocket-Accept" && $0.value.hasSuffix("(matches the key)") })
        #expect(stage.details.contains { $0.name == "Server" && $0.value == "nginx" })
    }

    @Test func wrongAcceptFails() {
        let stage = check(101, [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "bogus=")])
        #expect(stage.verdict == .failed)
        #expect(stage.summary.contains("does not match the key"))
    }

    @Test func subprotocolNotOfferedFails() {
        let stage = check(101, [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                                ("Sec-WebSocket-Protocol", "v9")], offered: ["v1"])
        #expect(stage.verdict == .failed)
        #expect(stage.summary.contains("\"v9\""))
    }

    @Test func unauthorizedSaysCredentialsRejected() {
        let stage = check(401, [("WWW-Authenticate", "Bearer error=\"invalid_token\"")], credentials: true)
        #expect(stage.verdict == .failed)
        #expect(stage.summary == "HTTP/1.1 401 R: credentials rejected (Bearer error=\"invalid_token\")")
        #expect(check(403, []).summary.contains("no auth configured"))
    }

    @Test func okWithoutUpgradeSuggestsAProxyStrippingIt() {
        let stage = check(200, [("Server", "squid"), ("Via", "1.1 proxy")])
        #expect(stage.verdict == .failed)
        #expect(stage.summary.contains("stripping the Upgrade header"))
        #expect(stage.details.contains { $0.name == "Via" })
    }

    @Test func busyShowsRetryAfterAndRedirectShowsLocation() {
        #expect(check(503, [("Retry-After", "30")]).summary.contains("Retry-After: 30"))
        #expect(check(301, [("Location", "wss://other/")]).summary.contains("to wss://other/"))
    }

    // MARK: - TLS

    func certificate(notAfterOffset: Int64 = 86_400, notBeforeOffset: Int64 = -86_400, subject: String = "CN=localhost",
                     issuer: String = "CN=Test CA", dns: [String] = ["localhost"]) -> CertificateSummary {
        let now = WallClockTime.now().microsecondsSinceEpoch
        return CertificateSummary(subject: subject, issuer: issuer,
                                  notBefore: WallClockTime(microsecondsSinceEpoch: now + notBeforeOffset * 1_000_000),
                                  notAfter: WallClockTime(microsecondsSinceEpoch: now + notAfterOffset * 1_000_000),
                                  dnsNames: dns, ipAddresses: ["127.0.0.1"])
    }

    let verifyFailed = "handshakeFailed(sslError([Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED]))"

    func diagnose(_ certificate: CertificateSummary?, error: String? = nil, hostname: Bool = false, name: String = "localhost") -> TLSFailureDiagnosis {
        TLSFailureDiagnosis.diagnose(error: error ?? verifyFailed, hostnameFailure: hostname, certificate: certificate,
                                     expectedName: name, trust: "the system trust store", now: .now())
    }

    @Test func unknownCANamesTheIssuerAndTheTrustStore() {
        let d = diagnose(certificate())
        #expect(d.cause == .unknownCA)
        #expect(d.reason.contains("\"CN=Test CA\" is not trusted by the system trust store"))
        #expect(d.notes.isEmpty)
    }

    @Test func expiredNotYetValidSelfSigned() {
        #expect(diagnose(certificate(notAfterOffset: -60)).cause == .expired)
        #expect(diagnose(certificate(notBeforeOffset: 3_600)).cause == .notYetValid)
        #expect(diagnose(certificate(issuer: "CN=localhost")).cause == .selfSigned)
    }

    @Test func hostnameMismatchListsTheCertificateNames() {
        let d = diagnose(certificate(dns: ["a.example"]), error: "failedToValidateHostname", hostname: true, name: "b.example")
        #expect(d.cause == .hostnameMismatch)
        #expect(d.reason.contains("a.example, 127.0.0.1"))
        #expect(d.reason.contains("not b.example"))
        // A chain problem and a name problem together: both are reported.
        #expect(diagnose(certificate(dns: ["a.example"]), name: "b.example").notes.count == 1)
    }

    @Test func notTLSAndUnknownCertificate() {
        #expect(diagnose(nil, error: "handshakeFailed(sslError([... WRONG_VERSION_NUMBER]))").cause == .notTLS)
        #expect(diagnose(nil).cause == .unverified)
    }

    @Test func certificateNameMatching() {
        let c = CertificateSummary(subject: "CN=x", issuer: "CN=y", notBefore: .now(), notAfter: .now(),
                                   dnsNames: ["*.example.com", "exact.org"], ipAddresses: ["::1", "10.0.0.1"])
        #expect(c.matches(host: "feed.example.com"))
        #expect(!c.matches(host: "a.b.example.com"))
        #expect(!c.matches(host: "example.com"))
        #expect(c.matches(host: "EXACT.org"))
        #expect(c.matches(host: "0:0::1"))
        #expect(c.matches(host: "10.0.0.1"))
        #expect(!c.matches(host: "10.0.0.2"))
    }

    // MARK: - Credentials

    @Test func credentialStageShowsOnlyTheFingerprint() {
        let auth = AuthSettings(name: "main", provider: .staticToken(.inline("s3cr3t")))
        let token = IssuedToken(value: "s3cr3t", generation: 1, expiresAt: nil)
        let stage = ProbeCredentialReport.stage(auth: auth, type: "static", result: .success(token), elapsed: ms, now: .now())
        #expect(stage.verdict == .ok)
        #expect(stage.summary == "token \(SecretFingerprint.of("s3cr3t")) obtained, expiry unknown")
        #expect(!ProbeRendering.text(stage).contains("s3cr3t"))
        #expect(stage.details.contains { $0.value == "header Authorization: Bearer <token>" })

        let failed = ProbeCredentialReport.stage(
            auth: auth, type: "oauth2",
            result: .failure(CredentialError(.grantRejected, credential: "main", "token endpoint refused the grant", httpStatus: 400, oauthError: "invalid_grant")),
            elapsed: ms, now: .now())
        #expect(failed.verdict == .failed)
        #expect(failed.summary == "no token: token endpoint refused the grant")
        #expect(failed.details.contains { $0.value == "invalid_grant" })
    }

    @Test func relativeTimes() {
        #expect(ProbeCredentialReport.relative(59) == "in 59s")
        #expect(ProbeCredentialReport.relative(3_540) == "in 59m")
        #expect(ProbeCredentialReport.relative(-7_260) == "2h 1m ago")
        #expect(ProbeCredentialReport.relative(2 * 86_400 + 3 * 3_600) == "in 2d 3h")
    }

    // MARK: - Target

    func resolve(_ argument: String, toml: String? = nil, environment: [String: String] = [:]) -> Result<ProbeTarget, ProbeTarget.ResolveError> {
        ProbeTarget.resolve(argument: argument, configPath: "/etc/wsrelay/test.toml", environment: environment) { path in
            guard let toml else {
                return .failure(ConfigLoadError(diagnostics: [ConfigDiagnostic(severity: .error, file: path, keyPath: "", message: "cannot open configuration file")]))
            }
            return ConfigLoader.parse(toml: toml, file: path)
        }
    }

    static let config = """
        [[upstream]]
        name = "market"
        url = "wss://feed.example.com/v1"
        auth = "main"
        proxy = "http://proxy.local:3128"
        subprotocols = ["v1"]

        [auth.main]
        type = "static"
        token_env = "FEED_TOKEN"
        """

    @Test func urlUsesDefaultsAndTheEnvironmentProxy() throws {
        let target = try resolve("wss://h.example:8443/x", environment: ["https_proxy": "http://p:8080"]).get()
        #expect(target.settings.url == WebSocketURL(secure: true, host: "h.example", port: 8443, target: "/x"))
        #expect(target.proxy == ProxyTarget(host: "p", port: 8080))
        #expect(target.auth == nil)
        #expect(!target.fromConfig)
    }

    @Test func nameUsesTheUpstreamsSettings() throws {
        let target = try resolve("market", toml: Self.config).get()
        #expect(target.fromConfig)
        #expect(target.label == "market: wss://feed.example.com/v1")
        #expect(target.auth?.name == "main")
        #expect(target.proxy == ProxyTarget(host: "proxy.local", port: 3128))
        #expect(target.settings.subprotocols == ["v1"])
    }

    @Test func errorsMapToExitStatuses() {
        func status(_ result: Result<ProbeTarget, ProbeTarget.ResolveError>) -> Int32? {
            if case .failure(let error) = result { return error.status }
            return nil
        }
        #expect(status(resolve("http://x/")) == ProbeExitStatus.usage)
        #expect(status(resolve("market")) == ProbeExitStatus.config)
        let unknown = resolve("markte", toml: Self.config)
        #expect(status(unknown) == ProbeExitStatus.usage)
        if case .failure(let error) = unknown {
            #expect(error.description.contains("did you mean \"market\"?"))
        }
    }
}
