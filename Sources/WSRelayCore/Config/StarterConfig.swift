/// The commented starter configuration `wsrelay init` prints: one upstream and one file sink, everything else
/// left at its default and only mentioned in comments, so a new user can begin with
/// `wsrelay init > /etc/wsrelay/wsrelay.toml` and grow it from `etc/wsrelay/wsrelay.toml` (every key) later.
///
/// The text is checked: `render` refuses values that do not make a valid config (an upstream name or URL the
/// loader would reject), so whatever `init` prints passes `wsrelay check-config`.
public enum StarterConfig {
    public struct Options: Sendable, Equatable {
        public var name: String
        public var url: String
        /// The file sink's path; nil: `/var/log/wsrelay/NAME.jsonl` (rotated by the shipped logrotate file).
        public var file: String?

        public init(name: String = "example", url: String = "wss://stream.example.com/v1/feed", file: String? = nil) {
            self.name = name
            self.url = url
            self.file = file
        }

        public var filePath: String { file ?? "/var/log/wsrelay/\(name).jsonl" }
    }

    /// The starter config for `options`, or every reason it would not load.
    public static func render(_ options: Options = Options()) -> Result<String, ConfigLoadError> {
        let text = text(options)
        return ConfigLoader.parse(toml: text, file: "wsrelay init").map { _ in text }
    }

    static func text(_ o: Options) -> String {
        """
        # wsrelay configuration: a starter for one upstream and one file sink (written by `wsrelay init`).
        #
        # Check it with   wsrelay check-config --config /etc/wsrelay/wsrelay.toml
        # (prints every error at once, or the effective configuration with all defaults filled in).
        # Diagnose an upstream that will not connect with   wsrelay probe \(o.name)
        # Every key, with its default, is documented in wsrelay.toml(5) and the project's etc/wsrelay/wsrelay.toml.
        # Durations are strings ("250ms", "30s", "2m"); sizes too ("64KiB", "16MiB"); paths are absolute.

        [daemon]
        # Persistent state (rotated refresh tokens). The systemd unit provides this directory.
        state_dir = "/var/lib/wsrelay"
        # Control socket used by `wsrelay status`, `wsrelay reload`, `wsrelay pause NAME` ...
        control_socket = "/run/wsrelay/control.sock"
        # "trace", "debug", "info", "notice", "warning", "error" or "critical".
        log_level = "info"

        # Prometheus metrics on a loopback address (off unless set); see etc/prometheus/wsrelay-rules.yml.
        # [metrics]
        # listen = "127.0.0.1:9464"

        [[upstream]]
        # A unique name: it appears in every message, in logs, status and metrics.
        name = \(TOMLText.quoted(o.name))
        # ws:// or wss:// URL of the WebSocket server.
        url = \(TOMLText.quoted(o.url))
        # A ping every 30 s; no pong within 10 s means the connection is dead and is replaced.
        # ping_interval = "30s"
        # pong_timeout = "10s"
        # Messages sent after every connect, e.g. the server's subscribe request:
        # subscribe = ['{"op":"subscribe","channel":"trades"}']
        # Extra handshake headers:
        # headers = { "User-Agent" = "wsrelay" }
        # Authentication: name an [auth.NAME] section (below) and uncomment it.
        # auth = "main"

        # [auth.main]
        # # "static", "file", "command", "oauth2" or "http_json".
        # type = "static"
        # # The token from a systemd credential (LoadCredential=main-token:/etc/wsrelay/credentials/main-token),
        # # or token_file = "/path", or token_env = "VARIABLE".
        # token_credential = "main-token"
        # # Sent as "Authorization: Bearer <token>" by default.

        [[sink]]
        # One JSON object per message (upstream, epoch, seq, ts, type, data), one per line.
        type = "file"
        path = \(TOMLText.quoted(o.filePath))
        format = "envelope"
        # Also write connected/disconnected records.
        events = true
        # fsync once a second ("never", "interval" or "always").
        # fsync = "interval"
        # When the 64 MiB buffer is full (disk full, slow disk): "block" pauses the upstreams, "drop" drops and
        # writes a gap record.
        # on_full = "block"

        # Local consumers can subscribe to a Unix socket instead (then: wsrelay tail --socket PATH):
        # [[sink]]
        # type = "unix"
        # path = "/run/wsrelay/subscribe.sock"

        """
    }
}
