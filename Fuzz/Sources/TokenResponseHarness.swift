@testable import WSRelayCore

extension FuzzTargets {
    /// Token endpoint / file / command output: the success parser (with standard and dotted field paths),
    /// the OAuth error reader, JWT `exp` and RFC 3339 expiries. Errors must never repeat a token.
    static let tokenResponse = FuzzTarget(name: "token-response", summary: "TokenResponseParser, JWTExpiry, RFC3339") { bytes in
        let body = Array(bytes)
        let issuedAt = WallClockTime(microsecondsSinceEpoch: 1_795_000_000_000_000)
        var dotted = TokenResponseFields()
        dotted.accessToken = "data.token"
        dotted.expiresIn = "data.ttl"
        dotted.expiresAt = "data.expires"
        for fields in [TokenResponseFields.standard, dotted] {
            do throws(CredentialError) {
                let response = try TokenResponseParser.parse(
                    body, fields: fields, issuedAt: issuedAt, credential: "fuzz", source: "token endpoint"
                )
                check(!response.accessToken.isEmpty, "empty access token accepted")
                _ = response.description
                _ = response.grant.description
            } catch {
                _ = error.description
            }
        }
        _ = TokenResponseParser.oauthError(body, secrets: ["fuzz-secret"])
        let text = String(decoding: bytes, as: UTF8.self)
        _ = JWTExpiry.expiry(ofToken: text)?.rfc3339
        _ = RFC3339.parse(text)?.rfc3339
    }
}
