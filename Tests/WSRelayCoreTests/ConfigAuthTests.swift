import Testing

@testable import WSRelayCore

private typealias S = ConfigTestSupport

/// An upstream using `[auth.a]`, followed by the given `[auth.a]` body.
private func withAuth(_ body: String) -> String {
    S.upstream + "auth = \"a\"\n\n[auth.a]\n" + body + "\n"
}

@Suite("Config: [auth.NAME]")
struct ConfigAuthTests {
    @Test func staticSecretSources() throws {
        let cases: [(String, SecretSource)] = [
            ("token_file = \"/etc/t\"", .file("/etc/t")),
            ("token_env = \"MY_TOKEN\"", .environment("MY_TOKEN")),
            ("token_credential = \"tok\"", .systemdCredential("tok")),
            ("credential = \"tok\"", .systemdCredential("tok")),
            ("token = \"abc\"", .inline("abc")),
        ]
        for (line, expected) in cases {
            let loaded = try #require(S.load(withAuth("type = \"static\"\n" + line)))
            let auth = try #require(loaded.configuration.credential(named: "a"))
            #expect(auth.provider == .staticToken(expected))
            #expect(auth.placement == .header(name: "Authorization", prefix: "Bearer "))
            #expect(auth.refreshSkew == .seconds(60))
            #expect(auth.timeout == .seconds(10))
            #expect(auth.retryInitial == .seconds(1))
            #expect(auth.retryMax == .seconds(300))
            if case .inline = expected {
                #expect(loaded.warnings.map(\.keyPath) == ["auth.a.token"])
                #expect(
                    loaded.warnings[0].message
                        == "inline secret in config file; prefer token_file, token_env or token_credential"
                )
            } else {
                #expect(loaded.warnings.isEmpty)
            }
        }
    }

    @Test func secretSourceErrors() {
        S.expectError(withAuth("type = \"static\""), at: "auth.a.token", "set one of token, token_file, token_env or token_credential")
        S.expectError(
            withAuth("type = \"static\"\ntoken = \"abc\"\ntoken_env = \"X\""), at: "auth.a.token",
            "conflicting secret sources: token, token_env are all set"
        )
        S.expectError(withAuth("type = \"static\"\ntoken_credential = \"a\"\ncredential = \"b\""), at: "auth.a.token", "conflicting")
        S.expectError(withAuth("type = \"static\"\ntoken_file = \"relative\""), at: "auth.a.token_file", "absolute path")
        S.expectError(withAuth("type = \"static\"\ntoken_env = \"1BAD\""), at: "auth.a.token_env", "invalid environment variable name")
        S.expectError(withAuth("type = \"static\"\ntoken_credential = \"a/b\""), at: "auth.a.token_credential", "invalid credential name")
    }

    @Test func inlineSecretsAreNeverEchoed() {
        let errs = S.errors(withAuth("type = \"static\"\ntoken = 123456789"))
        #expect(errs.map(\.keyPath) == ["auth.a.token"])
        #expect(errs[0].message == "expected a string, found an integer")
        let rendered = S.errors(withAuth("type = \"static\"\ntoken = \"sup3rs3cret\"\ntoken_env = \"X\""))
        #expect(!rendered.map(\.description).joined().contains("sup3rs3cret"))
    }

    @Test func environmentWarningOnlyWhenVariableIsUnset() throws {
        let toml = withAuth("type = \"static\"\ntoken_env = \"WSRELAY_TEST_TOKEN\"")
        let unset = try ConfigLoader.parse(toml: toml, file: "t", environment: [:]).get()
        #expect(unset.warnings.map(\.keyPath) == ["auth.a.token_env"])
        let set = try ConfigLoader.parse(toml: toml, file: "t", environment: ["WSRELAY_TEST_TOKEN": "x"]).get()
        #expect(set.warnings.isEmpty)
    }

    @Test func typeIsRequiredAndChecked() {
        S.expectError(withAuth("token_env = \"X\""), at: "auth.a.type", "required key is missing", "\"static\"")
        S.expectError(withAuth("type = \"oauth\"\ntoken_env = \"X\""), at: "auth.a.type", "did you mean \"oauth2\"?")
        S.expectError(S.upstream + "auth = \"a\"\n[auth]\na = \"static\"\n", at: "auth.a", "expected a table")
        S.expectError(
            S.upstream + "auth = \"bad name\"\n[auth.\"bad name\"]\ntype = \"static\"\ntoken_env = \"X\"\n",
            at: "auth.\"bad name\"", "invalid name"
        )
    }

    @Test func fileProvider() throws {
        let c = try #require(S.load(withAuth("type = \"file\"\npath = \"/run/t.json\"\nformat = \"json\""))).configuration
        #expect(c.auth[0].provider == .file(path: "/run/t.json", format: .json))
        let text = try #require(S.load(withAuth("type = \"file\"\npath = \"/run/t\""))).configuration
        #expect(text.auth[0].provider == .file(path: "/run/t", format: .text))
        S.expectError(withAuth("type = \"file\""), at: "auth.a.path", "required key is missing")
        S.expectError(withAuth("type = \"file\"\npath = \"/t\"\nformat = \"yaml\""), at: "auth.a.format", "\"text\", \"json\"")
    }

    @Test func commandProvider() throws {
        let c = try #require(S.load(withAuth("type = \"command\"\ncommand = [\"get-token\", \"-v\"]\ntimeout = \"30s\""))).configuration
        #expect(c.auth[0].provider == .command(argv: ["get-token", "-v"], timeout: .seconds(30)))
        #expect(c.auth[0].timeout == .seconds(30))
        let d = try #require(S.load(withAuth("type = \"command\"\ncommand = [\"/bin/tok\"]"))).configuration
        #expect(d.auth[0].provider == .command(argv: ["/bin/tok"], timeout: .seconds(10)))
        S.expectError(withAuth("type = \"command\""), at: "auth.a.command", "required key is missing")
        S.expectError(withAuth("type = \"command\"\ncommand = []"), at: "auth.a.command", "must not be empty")
        S.expectError(withAuth("type = \"command\"\ncommand = [\"bin/tok\"]"), at: "auth.a.command[0]", "absolute path or a bare name")
        S.expectError(withAuth("type = \"command\"\ncommand = \"/bin/tok\""), at: "auth.a.command", "expected an array of strings")
    }

    @Test func oauth2Provider() throws {
        let toml = withAuth(
            """
            type = "oauth2"
            token_url = "https://idp/token"
            client_id = "cid"
            client_secret_file = "/s"
            client_auth = "basic"
            scope = "s"
            audience = "aud"
            refresh_token_credential = "rt"
            """
        )
        let c = try #require(S.load(toml)).configuration
        var expected = OAuth2Settings(tokenURL: "https://idp/token")
        expected.clientID = "cid"
        expected.clientSecret = .file("/s")
        expected.clientAuth = .basic
        expected.scope = "s"
        expected.audience = "aud"
        expected.refreshToken = .systemdCredential("rt")
        #expect(c.auth[0].provider == .oauth2(expected))

        S.expectError(withAuth("type = \"oauth2\"\nrefresh_token_env = \"R\""), at: "auth.a.token_url", "required key is missing")
        S.expectError(withAuth("type = \"oauth2\"\ntoken_url = \"wss://idp/\"\nrefresh_token_env = \"R\""), at: "auth.a.token_url", "http:// or https://")
        S.expectError(withAuth("type = \"oauth2\"\ntoken_url = \"https://idp/\""), at: "auth.a.refresh_token", "refresh_token_credential")
        S.expectError(withAuth("type = \"oauth2\"\ntoken_url = \"https://idp/\"\nrefresh_token_env = \"R\"\nclient_auth = \"basic\""), at: "auth.a.client_id", "client_auth = \"basic\" requires client_id")
        S.expectError(withAuth("type = \"oauth2\"\ntoken_url = \"https://idp/\"\nrefresh_token_env = \"R\"\ngrant = \"password\""), at: "auth.a.grant", "\"refresh_token\", \"client_credentials\"")
    }

    @Test func oauth2ClientCredentials() throws {
        let ok = withAuth("type = \"oauth2\"\ntoken_url = \"https://idp/\"\ngrant = \"client_credentials\"\nclient_id = \"c\"\nclient_secret_env = \"S\"")
        let c = try #require(S.load(ok)).configuration
        guard case .oauth2(let o) = c.auth[0].provider else {
            Issue.record("not oauth2")
            return
        }
        #expect(o.grant == .clientCredentials)
        #expect(o.refreshToken == nil)
        let errs = S.errors(withAuth("type = \"oauth2\"\ntoken_url = \"https://idp/\"\ngrant = \"client_credentials\"\nrefresh_token = \"x\""))
        #expect(errs.map(\.keyPath).sorted() == ["auth.a.client_id", "auth.a.client_secret", "auth.a.refresh_token"])
    }

    @Test func httpJSONProvider() throws {
        let toml = withAuth(
            """
            type = "http_json"
            url = "https://auth/token"
            refresh_token_env = "R"
            headers = { "X-Z" = "z", "X-A" = "a" }
            token_field = "tok"
            expires_in_field = "ttl"
            expires_at_field = "exp"
            refresh_token_field = "rt"
            """
        )
        let c = try #require(S.load(toml)).configuration
        var expected = HTTPJSONSettings(url: "https://auth/token")
        expected.refreshToken = .environment("R")
        expected.headers = [HeaderField(name: "X-Z", value: "z"), HeaderField(name: "X-A", value: "a")]
        expected.tokenField = "tok"
        expected.expiresInField = "ttl"
        expected.expiresAtField = "exp"
        expected.refreshTokenField = "rt"
        #expect(c.auth[0].provider == .httpJSON(expected))
        let minimal = try #require(S.load(withAuth("type = \"http_json\"\nurl = \"http://127.0.0.1/t\""))).configuration
        #expect(minimal.auth[0].provider == .httpJSON(HTTPJSONSettings(url: "http://127.0.0.1/t")))
        S.expectError(withAuth("type = \"http_json\""), at: "auth.a.url", "required key is missing")
        S.expectError(withAuth("type = \"http_json\"\nurl = \"https://a/\"\nheaders = { Host = \"x\" }"), at: "auth.a.headers.Host", "reserved")
    }

    @Test func placements() throws {
        func placement(_ body: String) throws -> TokenPlacement {
            try #require(S.load(withAuth("type = \"static\"\ntoken_env = \"T\"\n" + body))).configuration.auth[0].placement
        }
        #expect(try placement("") == .header(name: "Authorization", prefix: "Bearer "))
        #expect(try placement("header = \"X-Token\"\nprefix = \"\"") == .header(name: "X-Token", prefix: ""))
        #expect(try placement("placement = \"subprotocol\"") == .subprotocol(prefix: ""))
        #expect(try placement("placement = \"subprotocol\"\nprefix = \"bearer.\"") == .subprotocol(prefix: "bearer."))
        #expect(try placement("placement = \"cookie\"") == .cookie(name: "token"))
        #expect(try placement("placement = \"cookie\"\ncookie = \"sid\"") == .cookie(name: "sid"))
        #expect(try placement("placement = \"query\"\nquery_param = \"t\"") == .query(parameter: "t"))
        #expect(
            try placement("placement = \"message\"\nauth_message = \"{token}\"")
                == .message(template: "{token}", okPattern: nil, timeout: .seconds(10))
        )
        #expect(
            try placement("placement = \"message\"\nauth_message = \"a{token}\"\nauth_ok = \"ok\"\nauth_timeout = \"2s\"")
                == .message(template: "a{token}", okPattern: "ok", timeout: .seconds(2))
        )
        let query = S.warnings(withAuth("type = \"static\"\ntoken_env = \"T\"\nplacement = \"query\""))
        #expect(query.map(\.keyPath) == ["auth.a.placement"])
        #expect(query[0].message.contains("URLs leak into logs and proxies"))
    }

    @Test func placementErrors() {
        let base = "type = \"static\"\ntoken_env = \"T\"\n"
        S.expectError(withAuth(base + "placement = \"body\""), at: "auth.a.placement", "\"header\", \"query\"")
        S.expectError(withAuth(base + "placement = \"message\""), at: "auth.a.auth_message", "required key is missing")
        S.expectError(withAuth(base + "placement = \"message\"\nauth_message = \"hi\""), at: "auth.a.auth_message", "{token}")
        S.expectError(withAuth(base + "cookie = \"x\""), at: "auth.a.cookie", "only valid with placement = \"cookie\" (this section uses placement = \"header\")")
        S.expectError(withAuth(base + "placement = \"query\"\nprefix = \"x\""), at: "auth.a.prefix", "placement = \"header\" or placement = \"subprotocol\"")
        S.expectError(withAuth(base + "placement = \"cookie\"\nheader = \"X\""), at: "auth.a.header", "only valid with placement = \"header\"")
        S.expectError(withAuth(base + "auth_ok = \"x\""), at: "auth.a.auth_ok", "placement = \"message\"")
        S.expectError(withAuth(base + "header = \"Sec-WebSocket-Key\""), at: "auth.a.header", "reserved")
        S.expectError(withAuth(base + "header = \"Bad Header\""), at: "auth.a.header", "HTTP token")
    }

    @Test func keysOfOtherTypes() {
        S.expectError(withAuth("type = \"static\"\ntoken_env = \"T\"\npath = \"/x\""), at: "auth.a.path", "belongs to auth type \"file\", not \"static\"")
        S.expectError(withAuth("type = \"file\"\npath = \"/x\"\nrefresh_token_env = \"R\""), at: "auth.a.refresh_token_env", "belongs to auth type \"oauth2\" or \"http_json\", not \"file\"")
        S.expectError(withAuth("type = \"command\"\ncommand = [\"x\"]\ntoken = \"t\""), at: "auth.a.token", "belongs to auth type \"static\"")
        S.expectError(withAuth("type = \"static\"\ntoken_env = \"T\"\nrefresh_skw = \"1s\""), at: "auth.a.refresh_skw", "did you mean \"refresh_skew\"?")
    }

    @Test func commonKeys() throws {
        let c = try #require(
            S.load(
                withAuth(
                    "type = \"static\"\ntoken_env = \"T\"\nrefresh_skew = \"0s\"\ntimeout = \"3s\"\nretry_initial = \"2s\"\nretry_max = \"1h\"\n[auth.a.tls]\nca_file = \"/ca\"\ninsecure_skip_verify = false"
                )
            )
        ).configuration
        let a = c.auth[0]
        #expect(a.refreshSkew == .zero)
        #expect(a.timeout == .seconds(3))
        #expect(a.retryInitial == .seconds(2))
        #expect(a.retryMax == .seconds(3600))
        #expect(a.tls.caFile == "/ca")
        S.expectError(withAuth("type = \"static\"\ntoken_env = \"T\"\nretry_initial = \"10m\""), at: "auth.a.retry_max", "at least retry_initial (10m)")
        S.expectError(withAuth("type = \"static\"\ntoken_env = \"T\"\n[auth.a.tls]\nclient_cert = \"/c\""), at: "auth.a.tls.client_key", "give both or neither")
    }

    @Test func references() {
        S.expectError(S.upstream + "auth = \"nope\"\n", at: "upstream[0].auth", "no [auth.nope] section", "no [auth.*] sections")
        S.expectError(withAuth("type = \"static\"\ntoken_env = \"T\"").replacingOccurrences(of: "auth = \"a\"", with: "auth = \"b\""),
            at: "upstream[0].auth", "no [auth.b] section", "did you mean \"a\"?")
        let unused = S.warnings(S.upstream + "[auth.spare]\ntype = \"static\"\ntoken_env = \"T\"\n")
        #expect(unused.map(\.keyPath) == ["auth.spare"])
        #expect(unused[0].message.contains("not used by any upstream"))
        S.expectError(withAuth("type = \"static\"\ntoken_env = \"T\"").replacingOccurrences(of: "auth = \"a\"", with: "auth = \"a\"\nheaders = { authorization = \"x\" }"),
            at: "upstream[0].headers.authorization", "also set by auth \"a\"")
    }

    @Test func authSectionsKeepFileOrder() throws {
        let toml = S.upstream + """
            auth = "zeta"
            [[upstream]]
            name = "b"
            url = "ws://b"
            auth = "alpha"
            [[upstream]]
            name = "c"
            url = "ws://c"
            auth = "mid.dle"

            [auth.zeta]
            type = "static"
            token_env = "Z"
            [auth."mid.dle"]
            type = "static"
            token_env = "M"
            [auth.alpha]
            type = "static"
            token_env = "A"
            """
        let c = try #require(S.load(toml)).configuration
        #expect(c.auth.map(\.name) == ["zeta", "mid.dle", "alpha"])
    }
}
