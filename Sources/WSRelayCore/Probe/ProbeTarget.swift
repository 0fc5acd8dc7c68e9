/// What `wsrelay probe NAME|URL` connects to, with every setting the daemon would use for it.
///
/// By name: the upstream's url, headers, subprotocols, origin, timeouts, TLS settings, proxy and credential,
/// exactly as loaded from the config. By URL: an upstream with default settings (the proxy still comes from
/// the environment, as it would for an upstream without a `proxy` key).
public struct ProbeTarget: Sendable {
    public var settings: UpstreamSettings
    /// The upstream's `[auth.NAME]`, when it has one.
    public var auth: AuthSettings?
    public var proxy: ProxyTarget?
    /// Where an oauth2/http_json credential keeps a rotated refresh token (the daemon's `state_dir`).
    public var stateDir: String
    /// True when probing an upstream of the config by name.
    public var fromConfig: Bool

    public init(settings: UpstreamSettings, auth: AuthSettings? = nil, proxy: ProxyTarget? = nil,
                stateDir: String = DaemonSettings().stateDir, fromConfig: Bool = false) {
        self.settings = settings
        self.auth = auth
        self.proxy = proxy
        self.stateDir = stateDir
        self.fromConfig = fromConfig
    }

    /// `feed: wss://host/path` by name, the URL alone otherwise.
    public var label: String {
        fromConfig ? "\(settings.name): \(settings.url)" : "\(settings.url)"
    }

    /// Why a target could not be chosen; `status` is the exit status to use.
    public struct ResolveError: Error, Sendable, CustomStringConvertible {
        public var status: Int32
        public var description: String
    }

    /// Reads `argument` as a ws:// or wss:// URL if it has a scheme, otherwise as an upstream name in the config
    /// at `configPath` (loaded only in that case, through `load`).
    public static func resolve(
        argument: String, configPath: String, environment: [String: String],
        load: (String) -> Result<LoadedConfiguration, ConfigLoadError>
    ) -> Result<ProbeTarget, ResolveError> {
        if argument.contains("://") {
            switch WebSocketURLParser.parse(argument) {
            case .failure(let error):
                return .failure(ResolveError(status: ProbeExitStatus.usage, description: "\(argument): \(error)"))
            case .success(let url):
                let settings = UpstreamSettings(name: "probe", url: url)
                let proxy = ProxyResolver.resolve(for: url, configured: nil, environment: environment)
                return .success(ProbeTarget(settings: settings, proxy: proxy))
            }
        }
        let configuration: Configuration
        switch load(configPath) {
        case .failure(let error):
            return .failure(ResolveError(status: ProbeExitStatus.config, description: "\(error)"))
        case .success(let loaded):
            configuration = loaded.configuration
        }
        guard let settings = configuration.upstreams.first(where: { $0.name == argument }) else {
            let names = configuration.upstreams.map(\.name)
            let known = names.isEmpty ? "it has none" : "it has: " + names.joined(separator: ", ")
            return .failure(ResolveError(
                status: ProbeExitStatus.usage,
                description: "no upstream named \"\(argument)\" in \(configPath)\(DidYouMean.hint(for: argument, among: names)) (\(known)); or give a ws:// or wss:// URL"))
        }
        let proxy = ProxyResolver.resolve(for: settings.url, configured: settings.proxy, environment: environment)
        return .success(ProbeTarget(
            settings: settings, auth: settings.auth.flatMap { configuration.credential(named: $0) }, proxy: proxy,
            stateDir: configuration.daemon.stateDir, fromConfig: true))
    }
}
