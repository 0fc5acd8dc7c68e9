/// What changed in a provider's inputs since the credential last looked.
enum SourceChange: Sendable, Equatable {
    /// The token itself changed (static token file, token file): the current token is stale.
    case token
    /// A refresh input changed (refresh token file, client secret file): a failed credential retries now;
    /// the current access token stays valid.
    case refreshInputs
}

/// Obtains a new token. One per `[auth.NAME]`; the `Credential` around it guarantees that at most one
/// `fetch()` runs at a time, so providers need no single-flight logic of their own.
protocol TokenProvider: Sendable {
    /// `static`, `file`, `command`, `oauth2`, `http_json`.
    var type: String { get }
    /// A new token (re-reading the source, running the command, or calling the endpoint).
    func fetch() async throws(CredentialError) -> TokenGrant
    /// A cheap check (a few `stat` calls) made on every token request: did a watched file change since the
    /// last look? Reports each change once.
    func sourceChanged() -> SourceChange?
    /// Releases resources (the HTTP client); `fetch()` fails with `.shutdown` afterwards.
    func shutdown() async
}

extension TokenProvider {
    func sourceChanged() -> SourceChange? { nil }
    func shutdown() async {}
}
