/// `[[sink]] type = "jetstream"`: where and how messages are published into a NATS JetStream stream.
public struct JetStreamSinkSettings: Sendable, Equatable {
    /// `nats://` or `tls://` URLs of one cluster; the client fails over between them.
    public var servers: [String]
    /// Subject per upstream, e.g. `wsrelay.{upstream}`.
    public var subject: SubjectTemplate
    /// Created at start when missing, checked when present; nil: the stream must already exist.
    public var stream: JetStreamStreamSettings? = nil
    public var auth: JetStreamAuth = .none
    public var tls: JetStreamTLSSettings? = nil
    /// Messages published and not yet acknowledged, at most.
    public var maxInFlight: Int = 1024
    /// How long to wait for one acknowledgement before the message is sent again (same message id).
    public var ackTimeout: Duration = .seconds(5)
    /// Bytes waiting (queued or in flight) before `onFull` applies.
    public var buffer: Int = 64 * 1024 * 1024
    public var onFull: OnFullPolicy = .block
    public var dedupe: JetStreamDedupe = .none

    public init(servers: [String], subject: SubjectTemplate) {
        self.servers = servers
        self.subject = subject
    }

    /// How the sink is named in logs, status and metrics: first server and subject template.
    public var label: String { "\(servers.first ?? "")/\(subject.template)" }
}

/// The stream a JetStream sink writes to. Keys left out are not compared with an existing stream; a new
/// stream gets the server's defaults for them except `subjects` (the sink's subject with `{upstream}` as `*`)
/// and `duplicate_window` (2 minutes, the server's default too).
public struct JetStreamStreamSettings: Sendable, Equatable {
    public var name: String
    public var subjects: [String]? = nil
    public var replicas: Int? = nil
    public var maxAge: Duration? = nil
    public var maxBytes: Int? = nil
    public var duplicateWindow: Duration? = nil

    public init(name: String) { self.name = name }
}

public enum JetStreamAuth: Sendable, Equatable {
    case none
    /// A NATS `.creds` file (user JWT and NKey seed).
    case credentialsFile(String)
    /// An NKey user: its public key (`U...`) and the file holding its seed.
    case nkey(publicKey: String, seedFile: String)
    case userPassword(user: String, password: SecretSource)
    case token(SecretSource)
}

public struct JetStreamTLSSettings: Sendable, Equatable {
    public var caFile: String? = nil
    public var clientCert: String? = nil
    public var clientKey: String? = nil
    /// The name the server certificates must carry; defaults to the servers' common host name.
    public var serverName: String? = nil
    public init() {}
}

extension JetStreamSinkSettings {
    /// TLS is on when a `tls` table is given or any server is `tls://`.
    public var usesTLS: Bool { tls != nil || servers.contains { $0.lowercased().hasPrefix("tls://") } }

    /// The host name every server certificate is checked against: cnats checks one name for all servers, so
    /// it is `tls.server_name`, else the host the servers share (nil when they differ: a config error).
    public var verifiedHostName: String? {
        if let name = tls?.serverName { return name }
        let hosts = Set(servers.map(Self.host(of:)))
        return hosts.count == 1 ? hosts.first : nil
    }

    /// `nats://host:port` → `host` (brackets of an IPv6 literal removed).
    static func host(of server: String) -> String {
        var rest = Substring(server)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") { return String(rest[rest.index(after: rest.startIndex)..<close]) }
        if let colon = rest.lastIndex(of: ":") { rest = rest[..<colon] }
        return String(rest)
    }
}

/// What the `Nats-Msg-Id` of a message is made of; JetStream stores a message id once per duplicate window.
public enum JetStreamDedupe: Sendable, Equatable {
    /// This relay's own identity of the message: retries after a lost ack are de-duplicated, another relay's
    /// copy is not.
    case none
    /// A hash of the upstream name and the payload: two relays on the same upstream store each message once
    /// (and identical payloads within the window, such as heartbeats, once).
    case payload
    /// The upstream name and the value at this JSON pointer (RFC 6901) in the payload, e.g. an update id.
    case jsonPointer(String)
}
