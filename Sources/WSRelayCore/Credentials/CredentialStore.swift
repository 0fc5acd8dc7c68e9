import Logging
import NIOCore

/// All `[auth.NAME]` credentials of one configuration: one `Credential` each, shared by the upstreams that
/// name it. HTTP providers use AsyncHTTPClient on the daemon's event loops; `shutdown()` must be called
/// before the store is released (it closes those clients).
public final class CredentialStore: Sendable {
    private let ordered: [Credential]
    private let byName: [String: Credential]

    public convenience init(
        settings: [AuthSettings], stateDir: String, environment: [String: String], group: any EventLoopGroup,
        logger: Logger
    ) {
        var credentials: [Credential] = []
        var seen: Set<String> = []
        for auth in settings where seen.insert(auth.name).inserted {
            var credentialLogger = logger
            credentialLogger[metadataKey: "credential"] = "\(auth.name)"
            let provider = Self.makeProvider(
                auth, stateDir: stateDir, environment: environment, group: group, logger: credentialLogger
            )
            credentials.append(Credential(settings: auth, provider: provider, logger: credentialLogger))
        }
        self.init(credentials: credentials)
    }

    init(credentials: [Credential]) {
        ordered = credentials
        var byName: [String: Credential] = [:]
        for credential in credentials where byName[credential.name] == nil { byName[credential.name] = credential }
        self.byName = byName
    }

    public var names: [String] { ordered.map(\.name) }

    public func credential(named name: String) -> Credential? {
        byName[name]
    }

    /// Fails pending requests, stops timers and closes the HTTP clients.
    public func shutdown() async {
        await withTaskGroup(of: Void.self) { group in
            for credential in ordered {
                group.addTask { await credential.shutdown() }
            }
        }
    }

    /// Status of every credential, in configuration order. Contains no secrets.
    public func snapshot() -> [CredentialStatus] {
        ordered.map { $0.status() }
    }

    /// SIGHUP: failed (and backing-off) credentials retry at once.
    public func resumeFailed() {
        for credential in ordered { credential.resumeFailed() }
    }

    static func makeProvider(
        _ auth: AuthSettings, stateDir: String, environment: [String: String], group: any EventLoopGroup,
        logger: Logger
    ) -> any TokenProvider {
        switch auth.provider {
        case .staticToken(let source):
            return StaticTokenProvider(credential: auth.name, source: source, environment: environment)
        case .file(let path, let format):
            return FileTokenProvider(credential: auth.name, path: path, format: format)
        case .command(let argv, let timeout):
            return CommandTokenProvider(credential: auth.name, argv: argv, timeout: timeout, logger: logger)
        case .oauth2(let settings):
            let http = TokenHTTPClient(group: group, tls: auth.tls, timeout: auth.timeout, credential: auth.name)
            return OAuth2TokenProvider(
                credential: auth.name, settings: settings, environment: environment, http: http, stateDir: stateDir,
                logger: logger
            )
        case .httpJSON(let settings):
            let http = TokenHTTPClient(group: group, tls: auth.tls, timeout: auth.timeout, credential: auth.name)
            return HTTPJSONTokenProvider(
                credential: auth.name, settings: settings, environment: environment, http: http, stateDir: stateDir,
                logger: logger
            )
        }
    }
}
