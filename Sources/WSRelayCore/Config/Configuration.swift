import Logging

/// The whole, validated configuration of one wsrelay process.
///
/// Every value here has already been checked by `ConfigLoader`; the rest of the daemon trusts it and never
/// re-validates. It is `Equatable` so a reload can be applied as a diff: an upstream whose settings compare
/// equal keeps its connection.
public struct Configuration: Sendable, Equatable {
    public var daemon: DaemonSettings
    public var metrics: MetricsSettings
    public var upstreams: [UpstreamSettings]
    /// Credentials by name, in the order they appear in the file.
    public var auth: [AuthSettings]
    public var sinks: [SinkSettings]

    public init(
        daemon: DaemonSettings = .init(),
        metrics: MetricsSettings = .init(),
        upstreams: [UpstreamSettings] = [],
        auth: [AuthSettings] = [],
        sinks: [SinkSettings] = []
    ) {
        self.daemon = daemon
        self.metrics = metrics
        self.upstreams = upstreams
        self.auth = auth
        self.sinks = sinks
    }

    public func credential(named name: String) -> AuthSettings? {
        auth.first { $0.name == name }
    }
}

/// Where log records go. `auto` picks the journal when systemd connected stderr to it (`JOURNAL_STREAM`).
public enum LogTarget: String, Sendable, Equatable, CaseIterable {
    case auto, journal, stderr
}

public struct DaemonSettings: Sendable, Equatable {
    /// PID file; `nil` means none unless `--pid-file` or `--daemon` asks for one.
    public var pidFile: String? = nil
    public var stateDir: String = "/var/lib/wsrelay"
    public var logLevel: Logger.Level = .info
    public var logTarget: LogTarget = .auto
    public var shutdownTimeout: Duration = .seconds(10)
    public var controlSocket: String = "/run/wsrelay/control.sock"
    public var controlAllowGIDs: [UInt32] = []

    public init() {}
}

public struct MetricsSettings: Sendable, Equatable {
    /// `host:port` on loopback, or an absolute Unix socket path; `nil` disables metrics.
    public var listen: String? = nil
    public init() {}
}

/// A parsed `ws://` or `wss://` URL.
public struct WebSocketURL: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var secure: Bool
    public var host: String
    public var port: Int
    /// Path plus query, always starting with `/`.
    public var target: String

    public init(secure: Bool, host: String, port: Int, target: String) {
        self.secure = secure
        self.host = host
        self.port = port
        self.target = target
    }

    public var description: String {
        let defaultPort = secure ? 443 : 80
        let h = host.contains(":") ? "[\(host)]" : host
        return "\(secure ? "wss" : "ws")://\(h)\(port == defaultPort ? "" : ":\(port)")\(target)"
    }
}

public struct ReconnectSettings: Sendable, Equatable {
    public var initial: Duration = .seconds(1)
    public var max: Duration = .seconds(60)
    public var multiplier: Double = 2
    public var resetAfter: Duration = .seconds(60)
    public init() {}
}

public struct TLSSettings: Sendable, Equatable {
    public var caFile: String? = nil
    public var clientCert: String? = nil
    public var clientKey: String? = nil
    public var insecureSkipVerify: Bool = false
    /// Overrides the SNI / verification name; defaults to the URL's host.
    public var serverName: String? = nil
    public init() {}
}

/// A message sent on every successful connect before anything is forwarded.
public enum OutgoingMessage: Sendable, Equatable, Hashable {
    case text(String)
    case binary([UInt8])
}

public struct UpstreamSettings: Sendable, Equatable {
    public var name: String
    public var url: WebSocketURL
    public var auth: String? = nil
    public var subprotocols: [String] = []
    /// Extra handshake headers, in file order.
    public var headers: [HeaderField] = []
    public var origin: String? = nil
    public var pingInterval: Duration = .seconds(30)
    public var pongTimeout: Duration = .seconds(10)
    public var appPing: String? = nil
    public var idleTimeout: Duration? = nil
    public var connectTimeout: Duration = .seconds(10)
    public var handshakeTimeout: Duration = .seconds(10)
    public var maxMessageSize: Int = 16 * 1024 * 1024
    public var subscribe: [OutgoingMessage] = []
    public var refreshOnCloseCodes: [UInt16] = [4001, 4003]
    public var refreshOnStatus: [Int] = [401]
    public var fatalCloseCodes: [UInt16] = []
    public var reconnectBeforeExpiry: Bool = false
    /// `nil`: use `HTTPS_PROXY`/`https_proxy` and `no_proxy` from the environment; `""` never uses a proxy.
    public var proxy: String? = nil
    public var reconnect: ReconnectSettings = .init()
    public var tls: TLSSettings = .init()
    /// permessage-deflate (RFC 7692) on this upstream's connections.
    public var compression: CompressionMode = .auto

    public init(name: String, url: WebSocketURL) {
        self.name = name
        self.url = url
    }
}

/// Whether an upstream connection offers permessage-deflate (RFC 7692) and what a server's refusal means.
public enum CompressionMode: String, Sendable, Equatable, CaseIterable {
    /// Offer it; a server that declines is fine (messages arrive uncompressed).
    case auto
    /// Do not offer it; a server that enables it anyway breaks the handshake.
    case off
    /// Offer it; a server that declines is a connect failure (close code 1010).
    case require
}

public struct HeaderField: Sendable, Equatable, Hashable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// Where a secret comes from. The secret itself is only read when it is needed, never at config load,
/// so `check-config` and status output cannot show it.
public enum SecretSource: Sendable, Equatable, Hashable {
    /// Written inline in the config file (discouraged: `check-config` warns).
    case inline(String)
    case file(String)
    case environment(String)
    /// A systemd credential name, read from `$CREDENTIALS_DIRECTORY/NAME` (`LoadCredential=`).
    case systemdCredential(String)
}

/// Where the access token goes on each connection attempt.
public enum TokenPlacement: Sendable, Equatable, Hashable {
    /// A request header: `name: prefix + token` (default `Authorization: Bearer <token>`).
    case header(name: String, prefix: String)
    case query(parameter: String)
    /// An extra `Sec-WebSocket-Protocol` entry, `prefix + token`.
    case subprotocol(prefix: String)
    case cookie(name: String)
    /// Sent as the first message after the upgrade; `{token}` in the template is replaced, JSON-escaped.
    case message(template: String, okPattern: String?, timeout: Duration)
}

public enum OAuth2Grant: String, Sendable, Equatable, CaseIterable {
    case refreshToken = "refresh_token"
    case clientCredentials = "client_credentials"
}

public enum ClientAuthMethod: String, Sendable, Equatable, CaseIterable {
    case body, basic
}

public enum TokenFileFormat: String, Sendable, Equatable, CaseIterable {
    case text, json
}

public enum CredentialProvider: Sendable, Equatable {
    case staticToken(SecretSource)
    case file(path: String, format: TokenFileFormat)
    case command(argv: [String], timeout: Duration)
    case oauth2(OAuth2Settings)
    case httpJSON(HTTPJSONSettings)
}

public struct OAuth2Settings: Sendable, Equatable {
    public var tokenURL: String
    public var grant: OAuth2Grant = .refreshToken
    public var clientID: String? = nil
    public var clientSecret: SecretSource? = nil
    public var clientAuth: ClientAuthMethod = .body
    public var scope: String? = nil
    public var audience: String? = nil
    public var refreshToken: SecretSource? = nil
    public init(tokenURL: String) { self.tokenURL = tokenURL }
}

public struct HTTPJSONSettings: Sendable, Equatable {
    public var url: String
    public var refreshToken: SecretSource? = nil
    public var headers: [HeaderField] = []
    public var tokenField: String = "access_token"
    public var expiresInField: String = "expires_in"
    public var expiresAtField: String = "expires_at"
    public var refreshTokenField: String = "refresh_token"
    public init(url: String) { self.url = url }
}

public struct AuthSettings: Sendable, Equatable {
    public var name: String
    public var provider: CredentialProvider
    public var placement: TokenPlacement = .header(name: "Authorization", prefix: "Bearer ")
    public var refreshSkew: Duration = .seconds(60)
    /// Timeout of one HTTP call to a token endpoint.
    public var timeout: Duration = .seconds(10)
    /// Backoff between failed refreshes.
    public var retryInitial: Duration = .seconds(1)
    public var retryMax: Duration = .seconds(300)
    public var tls: TLSSettings = .init()

    public init(name: String, provider: CredentialProvider) {
        self.name = name
        self.provider = provider
    }
}

public enum SinkFormat: String, Sendable, Equatable, CaseIterable {
    case envelope, raw
}

public enum FsyncPolicy: String, Sendable, Equatable, CaseIterable {
    case never, interval, always
}

public enum OnFullPolicy: String, Sendable, Equatable, CaseIterable {
    case block, drop
}

public enum SlowConsumerPolicy: String, Sendable, Equatable, CaseIterable {
    case disconnect, drop
}

public struct FileSinkSettings: Sendable, Equatable {
    public var path: String
    public var mode: UInt32 = 0o640
    public var fsync: FsyncPolicy = .interval
    public var fsyncInterval: Duration = .seconds(1)
    public var rotateSize: Int? = nil
    public var rotateKeep: Int = 5
    public var buffer: Int = 64 * 1024 * 1024
    public var onFull: OnFullPolicy = .block
    public init(path: String) { self.path = path }
}

public struct UnixSinkSettings: Sendable, Equatable {
    /// Socket path; with socket activation the inherited fd named `listen_fd_name` is used instead.
    public var path: String?
    public var listenFDName: String? = nil
    public var mode: UInt32 = 0o660
    public var owner: String? = nil
    public var group: String? = nil
    public var allowUIDs: [UInt32] = []
    public var allowGIDs: [UInt32] = []
    public var queue: Int = 8 * 1024 * 1024
    public var slowConsumer: SlowConsumerPolicy = .disconnect
    /// Subscribers (already allowed by `allowUIDs`/`allowGIDs`) may send on upstreams (`{"send":...}`).
    public var allowSend: Bool = false
    public init(path: String?) { self.path = path }
}

public enum SinkKind: Sendable, Equatable {
    case file(FileSinkSettings)
    case unix(UnixSinkSettings)
    case stdout
    case journal
    case jetstream(JetStreamSinkSettings)
}

public struct SinkSettings: Sendable, Equatable {
    public var kind: SinkKind
    /// Upstream names this sink receives; empty means all.
    public var upstreams: [String] = []
    public var format: SinkFormat = .envelope
    public var events: Bool = false

    public init(kind: SinkKind) { self.kind = kind }
}
