import NIOConcurrencyHelpers

/// `type = "static"`: a token from a file, an environment variable, a systemd credential, or inline.
///
/// "Refreshing" re-reads the source: a file or systemd credential replaced on disk is picked up (its change is
/// noticed on the next token request), an inline or environment token never changes.
final class StaticTokenProvider: TokenProvider {
    let type = "static"
    private let credential: String
    private let source: SecretSource
    private let environment: [String: String]
    private let tracker: NIOLockedValueBox<FileChangeTracker?>

    init(credential: String, source: SecretSource, environment: [String: String]) {
        self.credential = credential
        self.source = source
        self.environment = environment
        self.tracker = NIOLockedValueBox(SecretReader.watchedPath(source, environment: environment).map(FileChangeTracker.init))
    }

    func fetch() async throws(CredentialError) -> TokenGrant {
        let secret = try SecretReader.read(source, environment: environment, credential: credential, what: "token")
        if let identity = secret.file { tracker.withLockedValue { $0?.record(identity) } }
        try TokenGrant.validate(secret.value, credential: credential, source: "token source")
        return .resolving(accessToken: secret.value, explicitExpiry: nil)
    }

    func sourceChanged() -> SourceChange? {
        tracker.withLockedValue { $0?.checkChanged() ?? false } ? .token : nil
    }
}
