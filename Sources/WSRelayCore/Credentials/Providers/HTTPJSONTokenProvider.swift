import Foundation
import Logging

/// `type = "http_json"`: POSTs `{"refresh_token": "..."}` (or `{}` without one) as JSON to `url` with the
/// configured headers, and reads the access token, `expires_in` / `expires_at` and a rotated refresh token
/// from the configured field names (dotted paths such as `data.token` work too). Rotation is persisted like
/// oauth2's. 400/401 answers put the credential into the failed state.
final class HTTPJSONTokenProvider: TokenProvider {
    let type = "http_json"
    private let credential: String
    private let settings: HTTPJSONSettings
    private let http: TokenHTTPClient
    let refreshTokens: RefreshTokenStore
    private let now: @Sendable () -> WallClockTime

    init(
        credential: String, settings: HTTPJSONSettings, environment: [String: String], http: TokenHTTPClient,
        stateDir: String, logger: Logger, now: @escaping @Sendable () -> WallClockTime = { .now() }
    ) {
        self.credential = credential
        self.settings = settings
        self.http = http
        self.now = now
        self.refreshTokens = RefreshTokenStore(
            credential: credential, stateDir: stateDir, initial: settings.refreshToken, environment: environment,
            logger: logger
        )
    }

    func fetch() async throws(CredentialError) -> TokenGrant {
        let refreshToken = try refreshTokens.current()
        var object: [String: String] = [:]
        if let refreshToken { object["refresh_token"] = refreshToken }
        let body: [UInt8]
        do {
            body = Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
        } catch {
            throw CredentialError(.misconfigured, credential: credential, "cannot encode the request body")
        }
        var headers: [(String, String)] = [("Content-Type", "application/json"), ("Accept", "application/json")]
        for header in settings.headers { headers.append((header.name, header.value)) }
        // Configured header values (API keys) are treated as secrets too.
        let secrets = [refreshToken].compactMap { $0 } + settings.headers.map(\.value)

        let sentAt = now()
        let response = try await http.post(url: settings.url, headers: headers, body: body)
        guard (200..<300).contains(response.status) else {
            throw TokenHTTPClient.failure(status: response.status, body: response.body, url: settings.url,
                                          credential: credential, secrets: secrets)
        }
        let parsed = try TokenResponseParser.parse(
            response.body, fields: TokenResponseFields(settings), issuedAt: sentAt, credential: credential,
            source: "token endpoint response"
        )
        if let rotated = parsed.refreshToken {
            refreshTokens.rotate(to: rotated, replacing: refreshToken)
        }
        return parsed.grant
    }

    func sourceChanged() -> SourceChange? {
        refreshTokens.inputsChanged() ? .refreshInputs : nil
    }

    func shutdown() async { await http.shutdown() }
}
