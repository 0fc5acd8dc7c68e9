import Foundation
import Logging
import NIOConcurrencyHelpers

/// `type = "oauth2"`: RFC 6749 §6 refresh-token grant, or §4.4 client-credentials grant.
///
/// POSTs `application/x-www-form-urlencoded` `grant_type=...` (+ `refresh_token`), `scope`, `audience`, and
/// the client credentials either in the body (`client_auth = "body"`: `client_id`, `client_secret`) or as HTTP
/// Basic (`client_auth = "basic"`: `base64(urlencode(id) ":" urlencode(secret))`, RFC 6749 §2.3.1, the id then
/// not repeated in the body). A rotated refresh token in the answer is persisted by `RefreshTokenStore`.
final class OAuth2TokenProvider: TokenProvider {
    let type = "oauth2"
    private let credential: String
    private let settings: OAuth2Settings
    private let environment: [String: String]
    private let http: TokenHTTPClient
    let refreshTokens: RefreshTokenStore?
    private let clientSecretTracker: NIOLockedValueBox<FileChangeTracker?>
    private let now: @Sendable () -> WallClockTime

    init(
        credential: String, settings: OAuth2Settings, environment: [String: String], http: TokenHTTPClient,
        stateDir: String, logger: Logger, now: @escaping @Sendable () -> WallClockTime = { .now() }
    ) {
        self.credential = credential
        self.settings = settings
        self.environment = environment
        self.http = http
        self.now = now
        self.refreshTokens = settings.grant == .refreshToken
            ? RefreshTokenStore(credential: credential, stateDir: stateDir, initial: settings.refreshToken,
                                environment: environment, logger: logger)
            : nil
        self.clientSecretTracker = NIOLockedValueBox(
            settings.clientSecret.flatMap { SecretReader.watchedPath($0, environment: environment) }
                .map(FileChangeTracker.init)
        )
    }

    func fetch() async throws(CredentialError) -> TokenGrant {
        var form: [(String, String)] = [("grant_type", settings.grant.rawValue)]
        var secrets: [String] = []
        var sentRefreshToken: String? = nil
        if let refreshTokens {
            guard let token = try refreshTokens.current() else {
                throw CredentialError(.misconfigured, credential: credential, "no refresh token configured")
            }
            form.append(("refresh_token", token))
            secrets.append(token)
            sentRefreshToken = token
        }
        var clientSecret: String? = nil
        if let source = settings.clientSecret {
            let secret = try SecretReader.read(source, environment: environment, credential: credential,
                                               what: "client secret")
            if let file = secret.file { clientSecretTracker.withLockedValue { $0?.record(file) } }
            clientSecret = secret.value
            secrets.append(secret.value)
        }
        var headers: [(String, String)] = [
            ("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json"),
        ]
        switch settings.clientAuth {
        case .body:
            if let id = settings.clientID { form.append(("client_id", id)) }
            if let clientSecret { form.append(("client_secret", clientSecret)) }
        case .basic:
            let pair = FormEncoding.component(settings.clientID ?? "") + ":" + FormEncoding.component(clientSecret ?? "")
            headers.append(("Authorization", "Basic " + Data(pair.utf8).base64EncodedString()))
        }
        if let scope = settings.scope { form.append(("scope", scope)) }
        if let audience = settings.audience { form.append(("audience", audience)) }

        let sentAt = now()
        let response = try await http.post(url: settings.tokenURL, headers: headers,
                                           body: Array(FormEncoding.encode(form).utf8))
        guard (200..<300).contains(response.status) else {
            throw TokenHTTPClient.failure(status: response.status, body: response.body, url: settings.tokenURL,
                                          credential: credential, secrets: secrets)
        }
        let parsed = try TokenResponseParser.parse(
            response.body, issuedAt: sentAt, credential: credential, source: "token endpoint response"
        )
        if let rotated = parsed.refreshToken, let refreshTokens {
            refreshTokens.rotate(to: rotated, replacing: sentRefreshToken)
        }
        return parsed.grant
    }

    func sourceChanged() -> SourceChange? {
        let refresh = refreshTokens?.inputsChanged() ?? false
        let secret = clientSecretTracker.withLockedValue { $0?.checkChanged() ?? false }
        return refresh || secret ? .refreshInputs : nil
    }

    func shutdown() async { await http.shutdown() }
}
