import Logging
import NIOConcurrencyHelpers
import NIOCore

/// All `[auth.NAME]` credentials of one configuration: one `Credential` each, shared by the upstreams that
/// name it. HTTP providers use AsyncHTTPClient on the daemon's event loops; `shutdown()` must be called
/// before the store is released (it closes those clients).
public final class CredentialStore: Sendable {
    private struct Members: Sendable {
        var ordered: [Credential]
        var byName: [String: Credential]

        init(_ credentials: [Credential]) {
            ordered = credentials
            byName = [:]
            for credential in credentials where byName[credential.name] == nil { byName[credential.name] = credential }
        }
    }

    private let members: NIOLockedValueBox<Members>
    /// How to build a credential from its settings; kept so a reload can add or replace credentials.
    private let make: (@Sendable (AuthSettings) -> Credential)?

    public convenience init(
        settings: [AuthSettings], stateDir: String, environment: [String: String], group: any EventLoopGroup,
        logger: Logger, metrics: RelayMetrics = .disabled
    ) {
        let make: @Sendable (AuthSettings) -> Credential = { auth in
            var credentialLogger = logger
            credentialLogger[metadataKey: "credential"] = "\(auth.name)"
            let provider = Self.makeProvider(
                auth, stateDir: stateDir, environment: environment, group: group, logger: credentialLogger
            )
            return Credential(settings: auth, provider: provider, logger: credentialLogger,
                              metrics: metrics.credential(named: auth.name))
        }
        var seen: Set<String> = []
        let credentials = settings.filter { seen.insert($0.name).inserted }.map(make)
        self.init(credentials: credentials, make: make)
    }

    init(credentials: [Credential], make: (@Sendable (AuthSettings) -> Credential)? = nil) {
        members = NIOLockedValueBox(Members(credentials))
        self.make = make
    }

    public var names: [String] { members.withLockedValue { $0.ordered.map(\.name) } }

    public func credential(named name: String) -> Credential? {
        members.withLockedValue { $0.byName[name] }
    }

    /// Reload: builds fresh credentials for the `changed` names that `settings` still has, drops the ones it
    /// no longer has, and returns the credentials taken out of service. The caller shuts those down once no
    /// upstream uses them any more. Unchanged credentials keep their tokens.
    public func replace(_ changed: [String], from settings: [AuthSettings]) -> [Credential] {
        guard let make, !changed.isEmpty else { return [] }
        let changedNames = Set(changed)
        return members.withLockedValue { members in
            let retired = members.ordered.filter { changedNames.contains($0.name) }
            var seen: Set<String> = []
            let next = settings.filter { seen.insert($0.name).inserted }.map { auth in
                changedNames.contains(auth.name) ? make(auth) : (members.byName[auth.name] ?? make(auth))
            }
            members = Members(next)
            return retired
        }
    }

    /// Fails pending requests, stops timers and closes the HTTP clients.
    public func shutdown() async {
        await Self.shutdown(members.withLockedValue { $0.ordered })
    }

    /// Shuts down credentials a reload took out of service.
    public static func shutdown(_ credentials: [Credential]) async {
        await withTaskGroup(of: Void.self) { group in
            for credential in credentials {
                group.addTask { await credential.shutdown() }
            }
        }
    }

    /// Status of every credential, in configuration order. Contains no secrets.
    public func snapshot() -> [CredentialStatus] {
        members.withLockedValue { $0.ordered }.map { $0.status() }
    }

    /// SIGHUP: failed (and backing-off) credentials retry at once.
    public func resumeFailed() {
        for credential in members.withLockedValue({ $0.ordered }) { credential.resumeFailed() }
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
