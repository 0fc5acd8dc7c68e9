/// Every key the loader accepts, by section. The loader uses these lists for unknown-key detection and
/// "did you mean" hints; the tests check that the sample config documents each of them.
enum ConfigSchema {
    static let topLevel: Set<String> = ["daemon", "metrics", "upstream", "auth", "sink"]

    static let daemon: Set<String> = [
        "pid_file", "state_dir", "log_level", "log_target", "shutdown_timeout", "control_socket",
        "control_allow_gids",
    ]

    static let metrics: Set<String> = ["listen"]

    static let upstream: Set<String> = [
        "name", "url", "auth", "subprotocols", "headers", "origin", "ping_interval", "pong_timeout", "app_ping",
        "idle_timeout", "connect_timeout", "handshake_timeout", "max_message_size", "subscribe",
        "refresh_on_close_codes", "refresh_on_status", "fatal_close_codes", "reconnect_before_expiry", "proxy",
        "reconnect", "tls", "compression",
    ]

    static let reconnect: Set<String> = ["initial", "max", "multiplier", "reset_after"]

    static let tls: Set<String> = ["ca_file", "client_cert", "client_key", "insecure_skip_verify", "server_name"]

    /// Keys of a `{ text = "..." }` / `{ binary = "..." }` subscribe element.
    static let subscribeMessage: Set<String> = ["text", "binary"]

    /// The four ways to give a secret named `base`.
    static func secretKeys(_ base: String) -> [String] {
        [base, base + "_file", base + "_env", base + "_credential"]
    }

    // MARK: auth

    static let authTypes = ["static", "file", "command", "oauth2", "http_json"]

    static let authCommon: Set<String> = [
        "type", "placement", "header", "prefix", "query_param", "cookie", "auth_message", "auth_ok", "auth_timeout",
        "refresh_skew", "timeout", "retry_initial", "retry_max", "tls",
    ]

    static let authByType: [String: Set<String>] = [
        "static": Set(secretKeys("token") + ["credential"]),
        "file": ["path", "format"],
        "command": ["command"],
        "oauth2": Set(
            ["token_url", "grant", "client_id", "client_auth", "scope", "audience"] + secretKeys("client_secret")
                + secretKeys("refresh_token")
        ),
        "http_json": Set(
            ["url", "headers", "token_field", "expires_in_field", "expires_at_field", "refresh_token_field"]
                + secretKeys("refresh_token")
        ),
    ]

    static let placements = ["header", "query", "subprotocol", "cookie", "message"]

    /// Placement-specific keys and the placements they belong to.
    static let placementKeys: [String: [String]] = [
        "header": ["header"],
        "prefix": ["header", "subprotocol"],
        "query_param": ["query"],
        "cookie": ["cookie"],
        "auth_message": ["message"],
        "auth_ok": ["message"],
        "auth_timeout": ["message"],
    ]

    static var authAll: Set<String> {
        authByType.values.reduce(authCommon) { $0.union($1) }
    }

    // MARK: sink

    static let sinkTypes = ["file", "unix", "stdout", "journal", "jetstream"]

    static let sinkCommon: Set<String> = ["type", "upstreams", "format", "events"]

    static let sinkByType: [String: Set<String>] = [
        "file": ["path", "mode", "fsync", "fsync_interval", "rotate_size", "rotate_keep", "buffer", "on_full"],
        "unix": [
            "path", "listen_fd_name", "mode", "owner", "group", "allow_uids", "allow_gids", "queue", "slow_consumer",
            "allow_send",
        ],
        "stdout": [],
        "journal": [],
        "jetstream": Set(
            [
                "servers", "subject", "stream", "credentials_file", "nkey", "nkey_seed_file", "user", "tls",
                "max_in_flight", "ack_timeout", "buffer", "on_full", "dedupe",
            ] + secretKeys("password") + secretKeys("token")),
    ]

    static var sinkAll: Set<String> {
        sinkByType.values.reduce(sinkCommon) { $0.union($1) }
    }

    /// Every key name accepted anywhere (for the sample-config test).
    static var allKeyNames: Set<String> {
        var all = topLevel
        for section in [daemon, metrics, upstream, reconnect, tls, subscribeMessage, authAll, sinkAll] {
            all.formUnion(section)
        }
        return all
    }

    /// Types (of auth or sink) a key belongs to, in schema order, e.g. `refresh_token` -> oauth2, http_json.
    static func types(owning key: String, in byType: [String: Set<String>], order: [String]) -> [String] {
        order.filter { byType[$0]?.contains(key) == true }
    }
}
