import Crypto

/// Renders the effective configuration as TOML: every key, including defaults, in the loader's syntax.
///
/// The output parses back to an equal `Configuration`, except that inline secrets are shown as
/// `"<redacted sha256:XXXXXXXX>"` (the first 8 hex digits of the secret's SHA-256). Secrets from a file,
/// the environment or a systemd credential render as their reference, never as the secret itself.
/// Unset optional keys appear as comments.
public enum ConfigRenderer {
    public static func render(_ c: Configuration) -> String {
        var w = Writer()
        w.section("[daemon]", blankLine: false)
        w.optional("pid_file", c.daemon.pidFile.map(TOMLText.quoted))
        w.set("state_dir", TOMLText.quoted(c.daemon.stateDir))
        w.set("log_level", TOMLText.quoted(c.daemon.logLevel.rawValue))
        w.set("log_target", TOMLText.quoted(c.daemon.logTarget.rawValue))
        w.set("shutdown_timeout", duration(c.daemon.shutdownTimeout))
        w.set("control_socket", TOMLText.quoted(c.daemon.controlSocket))
        w.set("control_allow_gids", list(c.daemon.controlAllowGIDs.map { "\($0)" }))

        w.section("[metrics]")
        w.optional("listen", c.metrics.listen.map(TOMLText.quoted), unset: "metrics are disabled")

        for u in c.upstreams { renderUpstream(u, into: &w) }
        for a in c.auth { renderAuth(a, into: &w) }
        for s in c.sinks { renderSink(s, into: &w) }
        return w.text
    }

    // MARK: - Sections

    private static func renderUpstream(_ u: UpstreamSettings, into w: inout Writer) {
        w.section("[[upstream]]")
        w.set("name", TOMLText.quoted(u.name))
        w.set("url", TOMLText.quoted(u.url.description))
        w.optional("auth", u.auth.map(TOMLText.quoted))
        w.set("subprotocols", list(u.subprotocols.map(TOMLText.quoted)))
        w.set("headers", inlineTable(u.headers))
        w.optional("origin", u.origin.map(TOMLText.quoted))
        w.set("ping_interval", duration(u.pingInterval))
        w.set("pong_timeout", duration(u.pongTimeout))
        w.optional("app_ping", u.appPing.map(TOMLText.quoted))
        w.optional("idle_timeout", u.idleTimeout.map(duration))
        w.set("connect_timeout", duration(u.connectTimeout))
        w.set("handshake_timeout", duration(u.handshakeTimeout))
        w.set("max_message_size", TOMLText.quoted(ByteSizeParser.format(u.maxMessageSize)))
        w.set("compression", TOMLText.quoted(u.compression.rawValue))
        w.set(
            "subscribe",
            list(
                u.subscribe.map { message in
                    switch message {
                    case .text(let s): return TOMLText.quoted(s)
                    case .binary(let bytes): return "{ binary = \(TOMLText.quoted(Base64.encode(bytes))) }"
                    }
                }
            )
        )
        w.set("refresh_on_close_codes", list(u.refreshOnCloseCodes.map { "\($0)" }))
        w.set("refresh_on_status", list(u.refreshOnStatus.map { "\($0)" }))
        w.set("fatal_close_codes", list(u.fatalCloseCodes.map { "\($0)" }))
        w.set("reconnect_before_expiry", "\(u.reconnectBeforeExpiry)")
        w.optional("proxy", u.proxy.map(TOMLText.quoted), unset: "the proxy comes from the environment")

        w.section("[upstream.reconnect]", blankLine: false)
        w.set("initial", duration(u.reconnect.initial))
        w.set("max", duration(u.reconnect.max))
        w.set("multiplier", float(u.reconnect.multiplier))
        w.set("reset_after", duration(u.reconnect.resetAfter))

        w.section("[upstream.tls]", blankLine: false)
        renderTLS(u.tls, into: &w)
    }

    private static func renderTLS(_ t: TLSSettings, into w: inout Writer) {
        w.optional("ca_file", t.caFile.map(TOMLText.quoted), unset: "the system trust store is used")
        w.optional("client_cert", t.clientCert.map(TOMLText.quoted))
        w.optional("client_key", t.clientKey.map(TOMLText.quoted))
        w.set("insecure_skip_verify", "\(t.insecureSkipVerify)")
        w.optional("server_name", t.serverName.map(TOMLText.quoted), unset: "the URL's host is used")
    }

    private static func renderAuth(_ a: AuthSettings, into w: inout Writer) {
        let header = "auth." + TOMLText.key(a.name)
        w.section("[\(header)]")
        var timeoutWritten = false
        switch a.provider {
        case .staticToken(let source):
            w.set("type", "\"static\"")
            secret("token", source, into: &w)
        case .file(let path, let format):
            w.set("type", "\"file\"")
            w.set("path", TOMLText.quoted(path))
            w.set("format", TOMLText.quoted(format.rawValue))
        case .command(let argv, let timeout):
            w.set("type", "\"command\"")
            w.set("command", list(argv.map(TOMLText.quoted)))
            w.set("timeout", duration(timeout))
            timeoutWritten = true
        case .oauth2(let o):
            w.set("type", "\"oauth2\"")
            w.set("token_url", TOMLText.quoted(o.tokenURL))
            w.set("grant", TOMLText.quoted(o.grant.rawValue))
            w.optional("client_id", o.clientID.map(TOMLText.quoted))
            if let s = o.clientSecret { secret("client_secret", s, into: &w) } else { w.optional("client_secret", nil) }
            w.set("client_auth", TOMLText.quoted(o.clientAuth.rawValue))
            w.optional("scope", o.scope.map(TOMLText.quoted))
            w.optional("audience", o.audience.map(TOMLText.quoted))
            if o.grant == .refreshToken, let s = o.refreshToken { secret("refresh_token", s, into: &w) }
        case .httpJSON(let h):
            w.set("type", "\"http_json\"")
            w.set("url", TOMLText.quoted(h.url))
            if let s = h.refreshToken { secret("refresh_token", s, into: &w) } else { w.optional("refresh_token", nil) }
            w.set("headers", inlineTable(h.headers))
            w.set("token_field", TOMLText.quoted(h.tokenField))
            w.set("expires_in_field", TOMLText.quoted(h.expiresInField))
            w.set("expires_at_field", TOMLText.quoted(h.expiresAtField))
            w.set("refresh_token_field", TOMLText.quoted(h.refreshTokenField))
        }

        switch a.placement {
        case .header(let name, let prefix):
            w.set("placement", "\"header\"")
            w.set("header", TOMLText.quoted(name))
            w.set("prefix", TOMLText.quoted(prefix))
        case .query(let parameter):
            w.set("placement", "\"query\"")
            w.set("query_param", TOMLText.quoted(parameter))
        case .subprotocol(let prefix):
            w.set("placement", "\"subprotocol\"")
            w.set("prefix", TOMLText.quoted(prefix))
        case .cookie(let name):
            w.set("placement", "\"cookie\"")
            w.set("cookie", TOMLText.quoted(name))
        case .message(let template, let okPattern, let timeout):
            w.set("placement", "\"message\"")
            w.set("auth_message", TOMLText.quoted(template))
            w.optional("auth_ok", okPattern.map(TOMLText.quoted))
            w.set("auth_timeout", duration(timeout))
        }
        w.set("refresh_skew", duration(a.refreshSkew))
        if !timeoutWritten { w.set("timeout", duration(a.timeout)) }
        w.set("retry_initial", duration(a.retryInitial))
        w.set("retry_max", duration(a.retryMax))

        w.section("[\(header).tls]", blankLine: false)
        renderTLS(a.tls, into: &w)
    }

    private static func renderSink(_ s: SinkSettings, into w: inout Writer) {
        w.section("[[sink]]")
        switch s.kind {
        case .file: w.set("type", "\"file\"")
        case .unix: w.set("type", "\"unix\"")
        case .stdout: w.set("type", "\"stdout\"")
        case .journal: w.set("type", "\"journal\"")
        case .jetstream: w.set("type", "\"jetstream\"")
        }
        w.set("upstreams", list(s.upstreams.map(TOMLText.quoted)))
        w.set("format", TOMLText.quoted(s.format.rawValue))
        w.set("events", "\(s.events)")
        switch s.kind {
        case .file(let f):
            w.set("path", TOMLText.quoted(f.path))
            w.set("mode", mode(f.mode))
            w.set("fsync", TOMLText.quoted(f.fsync.rawValue))
            w.set("fsync_interval", duration(f.fsyncInterval))
            w.optional("rotate_size", f.rotateSize.map { TOMLText.quoted(ByteSizeParser.format($0)) })
            if f.rotateSize == nil && f.rotateKeep == FileSinkSettings(path: "").rotateKeep {
                w.line("# rotate_keep = \(f.rotateKeep) (only used with rotate_size)")
            } else {
                w.set("rotate_keep", "\(f.rotateKeep)")
            }
            w.set("buffer", TOMLText.quoted(ByteSizeParser.format(f.buffer)))
            w.set("on_full", TOMLText.quoted(f.onFull.rawValue))
        case .unix(let u):
            w.optional("path", u.path.map(TOMLText.quoted))
            w.optional("listen_fd_name", u.listenFDName.map(TOMLText.quoted))
            w.set("mode", mode(u.mode))
            w.optional("owner", u.owner.map(TOMLText.quoted))
            w.optional("group", u.group.map(TOMLText.quoted))
            w.set("allow_uids", list(u.allowUIDs.map { "\($0)" }))
            w.set("allow_gids", list(u.allowGIDs.map { "\($0)" }))
            w.set("queue", TOMLText.quoted(ByteSizeParser.format(u.queue)))
            w.set("slow_consumer", TOMLText.quoted(u.slowConsumer.rawValue))
            w.set("allow_send", u.allowSend ? "true" : "false")
        case .stdout, .journal:
            break
        case .jetstream(let j):
            renderJetStream(j, into: &w)
        }
    }

    private static func renderJetStream(_ j: JetStreamSinkSettings, into w: inout Writer) {
        w.set("servers", list(j.servers.map(TOMLText.quoted)))
        w.set("subject", TOMLText.quoted(j.subject.template))
        switch j.auth {
        case .none: break
        case .credentialsFile(let path): w.set("credentials_file", TOMLText.quoted(path))
        case .nkey(let key, let seed):
            w.set("nkey", TOMLText.quoted(key))
            w.set("nkey_seed_file", TOMLText.quoted(seed))
        case .userPassword(let user, let password):
            w.set("user", TOMLText.quoted(user))
            secret("password", password, into: &w)
        case .token(let token): secret("token", token, into: &w)
        }
        w.set("max_in_flight", "\(j.maxInFlight)")
        w.set("ack_timeout", duration(j.ackTimeout))
        w.set("buffer", TOMLText.quoted(ByteSizeParser.format(j.buffer)))
        w.set("on_full", TOMLText.quoted(j.onFull.rawValue))
        switch j.dedupe {
        case .none: w.set("dedupe", "\"none\"")
        case .payload: w.set("dedupe", "\"payload\"")
        case .jsonPointer(let p): w.set("dedupe", "{ json_pointer = \(TOMLText.quoted(p)) }")
        }
        if let tls = j.tls {
            var fields: [String] = []
            if let v = tls.caFile { fields.append("ca_file = \(TOMLText.quoted(v))") }
            if let v = tls.clientCert { fields.append("client_cert = \(TOMLText.quoted(v))") }
            if let v = tls.clientKey { fields.append("client_key = \(TOMLText.quoted(v))") }
            if let v = tls.serverName { fields.append("server_name = \(TOMLText.quoted(v))") }
            w.set("tls", "{ " + fields.joined(separator: ", ") + " }")
        }
        if let s = j.stream {
            var fields = ["name = \(TOMLText.quoted(s.name))"]
            if let v = s.subjects { fields.append("subjects = \(list(v.map(TOMLText.quoted)))") }
            if let v = s.replicas { fields.append("replicas = \(v)") }
            if let v = s.maxAge { fields.append("max_age = \(duration(v))") }
            if let v = s.maxBytes { fields.append("max_bytes = \(TOMLText.quoted(ByteSizeParser.format(v)))") }
            if let v = s.duplicateWindow { fields.append("duplicate_window = \(duration(v))") }
            w.set("stream", "{ " + fields.joined(separator: ", ") + " }")
        }
    }

    // MARK: - Values

    private static func secret(_ base: String, _ source: SecretSource, into w: inout Writer) {
        switch source {
        case .inline(let value): w.set(base, TOMLText.quoted(redacted(value)))
        case .file(let path): w.set(base + "_file", TOMLText.quoted(path))
        case .environment(let name): w.set(base + "_env", TOMLText.quoted(name))
        case .systemdCredential(let name): w.set(base + "_credential", TOMLText.quoted(name))
        }
    }

    /// `<redacted sha256:XXXXXXXX>`: enough to tell two secrets apart, useless to an attacker.
    static func redacted(_ secret: String) -> String {
        let digest = SHA256.hash(data: Array(secret.utf8))
        let hex = digest.prefix(4).map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
        return "<redacted sha256:\(hex)>"
    }

    private static func duration(_ d: Duration) -> String { TOMLText.quoted(DurationParser.format(d)) }

    private static func list(_ items: [String]) -> String { "[" + items.joined(separator: ", ") + "]" }

    private static func inlineTable(_ headers: [HeaderField]) -> String {
        if headers.isEmpty { return "{}" }
        return "{ " + headers.map { "\(TOMLText.key($0.name)) = \(TOMLText.quoted($0.value))" }.joined(separator: ", ")
            + " }"
    }

    private static func mode(_ m: UInt32) -> String { "0o" + String(m, radix: 8) }

    private static func float(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        let s = "\(d)"
        return s.contains(".") || s.contains("e") ? s : s + ".0"
    }

    private struct Writer {
        var text = ""

        mutating func line(_ s: String) { text += s + "\n" }

        mutating func section(_ header: String, blankLine: Bool = true) {
            text += blankLine ? "\n" + header + "\n" : header + "\n"
        }

        mutating func set(_ key: String, _ value: String) { line("\(key) = \(value)") }

        /// A set value, or a comment saying the key is not set.
        mutating func optional(_ key: String, _ value: String?, unset: String? = nil) {
            if let value {
                set(key, value)
            } else {
                line("# \(key) is not set" + (unset.map { " (\($0))" } ?? ""))
            }
        }
    }
}
