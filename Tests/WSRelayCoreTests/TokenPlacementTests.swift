import Testing
@testable import WSRelayCore

@Suite struct TokenPlacementTests {
    let url = WebSocketURL(secure: true, host: "feed.example.com", port: 443, target: "/ws")

    func request(target: String? = nil, headers: [HeaderField] = [], subprotocols: [String] = []) -> HandshakeRequest {
        var r = HandshakeRequest(url: url, headers: headers, subprotocols: subprotocols)
        if let target { r.target = target }
        return r
    }

    @Test func headerDefaultAndCustom() {
        var r = request(headers: [HeaderField(name: "X-Other", value: "1"), HeaderField(name: "authorization", value: "stale")])
        let message = TokenPlacement.header(name: "Authorization", prefix: "Bearer ").apply(token: "t0k", to: &r)
        #expect(message == nil)
        #expect(r.headers == [HeaderField(name: "X-Other", value: "1"), HeaderField(name: "Authorization", value: "Bearer t0k")])
        var r2 = request()
        TokenPlacement.header(name: "X-Api-Key", prefix: "").apply(token: "k", to: &r2)
        #expect(r2.headers == [HeaderField(name: "X-Api-Key", value: "k")])
    }

    @Test func queryParameterIsEncodedAndAppended() {
        var r = request()
        TokenPlacement.query(parameter: "access_token").apply(token: "a+b/c=d&e f", to: &r)
        #expect(r.target == "/ws?access_token=a%2Bb%2Fc%3Dd%26e%20f")
        #expect(r.url.target == "/ws")  // the upstream's URL itself is untouched

        var withQuery = request(target: "/ws?v=2")
        TokenPlacement.query(parameter: "token").apply(token: "x", to: &withQuery)
        #expect(withQuery.target == "/ws?v=2&token=x")

        var trailing = request(target: "/ws?")
        TokenPlacement.query(parameter: "token").apply(token: "x", to: &trailing)
        #expect(trailing.target == "/ws?token=x")

        var fragment = request(target: "/ws?a=1#frag")
        TokenPlacement.query(parameter: "p q").apply(token: "é", to: &fragment)
        #expect(fragment.target == "/ws?a=1&p%20q=%C3%A9#frag")
    }

    @Test func subprotocolEntry() {
        var r = request(subprotocols: ["v1.feed"])
        TokenPlacement.subprotocol(prefix: "access_token.").apply(token: "abc", to: &r)
        #expect(r.subprotocols == ["v1.feed", "access_token.abc"])
    }

    @Test func cookieAddedOrMerged() {
        var r = request()
        TokenPlacement.cookie(name: "session").apply(token: "s1", to: &r)
        #expect(r.headers == [HeaderField(name: "Cookie", value: "session=s1")])

        var merged = request(headers: [HeaderField(name: "cookie", value: "a=1; session=old;b=2")])
        TokenPlacement.cookie(name: "session").apply(token: "s2", to: &merged)
        #expect(merged.headers == [HeaderField(name: "cookie", value: "a=1; b=2; session=s2")])
    }

    @Test func messagePlacementRendersAndLeavesRequestAlone() {
        var r = request()
        let before = r
        let message = TokenPlacement.message(template: #"{"type":"auth","token":"{token}"}"#, okPattern: "ok", timeout: .seconds(5))
            .apply(token: #"a"b\c"#, to: &r)
        #expect(message == #"{"type":"auth","token":"a\"b\\c"}"#)
        #expect(r.headers == before.headers && r.target == before.target && r.subprotocols == before.subprotocols)
    }

    @Test func authMessageJSONEscaping() {
        #expect(AuthMessage.render(template: "{token}", token: "plain") == "plain")
        #expect(AuthMessage.render(template: #"["{token}","{token}"]"#, token: "x") == #"["x","x"]"#)
        #expect(AuthMessage.jsonEscaped("q\"b\\n\nr\rt\t\u{1}\u{7F}\u{2028}é/") == #"q\"b\\n\nr\rt\t\u0001\u007f\u2028é/"#)
    }

    @Test func authMessageMatching() {
        #expect(AuthMessage.matches(reply: #"{"type":"auth_ok"}"#, okPattern: "auth_ok"))
        #expect(!AuthMessage.matches(reply: #"{"type":"auth_failed"}"#, okPattern: "auth_ok"))
        #expect(!AuthMessage.matches(reply: "AUTH_OK", okPattern: "auth_ok"))  // case-sensitive
        #expect(!AuthMessage.matches(reply: "authXok", okPattern: "auth.ok"))  // not a regex
        #expect(AuthMessage.matches(reply: "anything", okPattern: ""))
    }

    @Test func attemptCredentialCarriesThisAttemptsToken() {
        let token = IssuedToken(value: "secret-1", generation: 7, expiresAt: nil)
        let attempt = AttemptCredential(token: token, placement: .header(name: "Authorization", prefix: "Bearer "))
        #expect(attempt.generation == 7 && attempt.fingerprint == token.fingerprint && attempt.authMessage == nil)
        var r = request()
        attempt.apply(&r)
        #expect(r.headers == [HeaderField(name: "Authorization", value: "Bearer secret-1")])

        let message = AttemptCredential(
            token: token, placement: .message(template: #"{"t":"{token}"}"#, okPattern: "ok", timeout: .seconds(3)))
        #expect(message.authMessage == #"{"t":"secret-1"}"# && message.authOKPattern == "ok" && message.authTimeout == .seconds(3))
        var untouched = request()
        message.apply(&untouched)
        #expect(untouched.headers.isEmpty)
    }

    @Test func issuedTokenNeverPrintsItsValue() {
        let token = IssuedToken(value: "super-secret-value", generation: 3, expiresAt: nil)
        var dumped = ""
        dump(token, to: &dumped)
        for text in [token.description, token.debugDescription, "\(token)", String(reflecting: token), dumped] {
            #expect(!text.contains("super-secret-value"), "\(text)")
            #expect(text.contains(token.fingerprint))
        }
        #expect(token.fingerprint == SecretFingerprint.of("super-secret-value"))
    }
}
