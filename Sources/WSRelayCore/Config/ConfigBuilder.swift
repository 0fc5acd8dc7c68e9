import Logging
import TOMLKit

/// Walks a parsed TOML document section by section and builds the `Configuration`, recording every problem
/// in `diagnostics`. When errors were recorded the returned configuration is incomplete and must not be used.
final class ConfigBuilder {
    let diagnostics: DiagnosticCollector
    let order: SourceOrder
    /// When set, `*_env` secrets naming unset variables get a warning.
    let environment: [String: String]?

    /// What the cross-reference checks need to know about each upstream.
    struct UpstreamInfo {
        var index: Int
        var name: String?
        var authReference: String?
        var headers: [HeaderField]
    }

    /// What the cross-reference checks need to know about each sink.
    struct SinkInfo {
        var index: Int
        var upstreams: [String]
        var path: String?
    }

    var upstreamInfo: [UpstreamInfo] = []
    /// Every `[auth.NAME]` key, valid or not: references to a broken section are not reported twice.
    var authNamesSeen: [String] = []
    var sinkInfo: [SinkInfo] = []

    init(diagnostics: DiagnosticCollector, order: SourceOrder, environment: [String: String]?) {
        self.diagnostics = diagnostics
        self.order = order
        self.environment = environment
    }

    func build(_ root: TableReader) -> Configuration {
        var config = Configuration()
        if let r = root.subtable("daemon") { config.daemon = daemon(r) }
        if let r = root.subtable("metrics") { config.metrics = metrics(r) }

        if root.contains("upstream") {
            if let readers = root.arrayOfTables("upstream") {
                if readers.isEmpty {
                    diagnostics.error("upstream", "at least one [[upstream]] section is required")
                }
                for (i, r) in readers.enumerated() {
                    config.upstreams.append(upstream(r, index: i, count: readers.count))
                }
            }
        } else {
            diagnostics.error("upstream", "at least one [[upstream]] section is required")
        }

        if let r = root.subtable("auth") { config.auth = authSections(r) }

        if let readers = root.arrayOfTables("sink") {
            for (i, r) in readers.enumerated() {
                if let s = sink(r, index: i) { config.sinks.append(s) }
            }
        }

        root.finish(allowed: ConfigSchema.topLevel)
        crossCheck(config)
        return config
    }

    // MARK: - [daemon] and [metrics]

    func daemon(_ r: TableReader) -> DaemonSettings {
        var s = DaemonSettings()
        if let v = r.absolutePath("pid_file") { s.pidFile = v }
        if let v = r.absolutePath("state_dir") { s.stateDir = v }
        if let v = r.enumValue("log_level", Logger.Level.self) { s.logLevel = v }
        if let v = r.enumValue("log_target", LogTarget.self) { s.logTarget = v }
        if let v = r.duration("shutdown_timeout") { s.shutdownTimeout = v }
        if let v = r.absolutePath("control_socket") { s.controlSocket = v }
        if let v = r.idArray("control_allow_gids") { s.controlAllowGIDs = v }
        r.finish(allowed: ConfigSchema.daemon)
        return s
    }

    func metrics(_ r: TableReader) -> MetricsSettings {
        var s = MetricsSettings()
        s.listen = r.read("listen", expected: "a \"HOST:PORT\" loopback address or an absolute socket path") { v in
            guard let text = v.string else { return .wrongType }
            if let problem = ConfigValidators.metricsListenProblem(text) { return .invalid(problem) }
            return .ok(text)
        }
        r.finish(allowed: ConfigSchema.metrics)
        return s
    }

    // MARK: - Shared pieces

    /// `[...tls]` for upstreams and auth sections.
    func tls(_ r: TableReader) -> TLSSettings {
        var s = TLSSettings()
        s.caFile = r.absolutePath("ca_file")
        s.clientCert = r.absolutePath("client_cert")
        s.clientKey = r.absolutePath("client_key")
        requireClientCertificatePair(r)
        if let v = r.bool("insecure_skip_verify") {
            s.insecureSkipVerify = v
            if v {
                r.warning(
                    "insecure_skip_verify",
                    "TLS certificate verification is disabled; anyone on the network path can impersonate the server"
                )
            }
        }
        s.serverName = r.string("server_name")
        r.finish(allowed: ConfigSchema.tls)
        return s
    }

    /// `client_cert` and `client_key` come together or not at all.
    func requireClientCertificatePair(_ r: TableReader) {
        if r.contains("client_cert") != r.contains("client_key") {
            let (given, missing) = r.contains("client_cert") ? ("client_cert", "client_key") : ("client_key", "client_cert")
            r.error(missing, "\(given) is set but \(missing) is not: give both or neither")
        }
    }

    /// A table of extra HTTP headers, in file order.
    func headers(_ r: TableReader, orderedNames: [String]) -> [HeaderField] {
        var result: [HeaderField] = []
        var seen: [String: String] = [:]
        for name in orderedNames {
            guard
                let value = r.read(name, expected: "a string header value", { v -> ConfigConversion<String> in
                    guard let s = v.string else { return .wrongType }
                    if let problem = ConfigValidators.headerValueProblem(s) { return .invalid(problem) }
                    return .ok(s)
                })
            else { continue }
            guard ConfigValidators.isHTTPToken(name) else {
                r.error(name, "invalid header name \(ConfigValueDescription.quote(name)): expected an HTTP token")
                continue
            }
            if ConfigValidators.isReservedHeader(name) {
                let hint = name.lowercased() == "sec-websocket-protocol" ? "; use subprotocols instead" : ""
                r.error(
                    name,
                    "header \"\(name)\" is reserved: wsrelay sets Host, Upgrade, Connection and Sec-WebSocket-* itself"
                        + hint
                )
                continue
            }
            if let earlier = seen[name.lowercased()] {
                r.error(name, "header \"\(name)\" duplicates \"\(earlier)\" (header names are case-insensitive)")
                continue
            }
            seen[name.lowercased()] = name
            result.append(HeaderField(name: name, value: value))
        }
        return result
    }

    /// Reads a URL-valued key checked by `validate`.
    func url(_ r: TableReader, _ key: String, required: Bool, expected: String, validate: (String) -> URLSyntaxError?)
        -> String?
    {
        r.read(key, required: required, expected: expected) { v in
            guard let s = v.string else { return .wrongType }
            if let e = validate(s) { return .invalid("invalid URL: \(e.message)") }
            return .ok(s)
        }
    }

    // MARK: - Cross references

    func crossCheck(_ config: Configuration) {
        // Unique upstream names.
        var firstIndex: [String: Int] = [:]
        for info in upstreamInfo {
            guard let name = info.name else { continue }
            if let first = firstIndex[name] {
                diagnostics.error(
                    "upstream[\(info.index)].name",
                    "duplicate upstream name \"\(name)\": used by upstream[\(first)] and upstream[\(info.index)]"
                )
            } else {
                firstIndex[name] = info.index
            }
        }

        // Auth references.
        let authNames = config.auth.map(\.name)
        var used = Set<String>()
        for info in upstreamInfo {
            guard let ref = info.authReference else { continue }
            used.insert(ref)
            guard let auth = config.auth.first(where: { $0.name == ref }) else {
                if authNamesSeen.contains(ref) { continue }  // the section itself is broken, already reported
                let known =
                    authNames.isEmpty
                    ? " (the file has no [auth.*] sections)"
                    : DidYouMean.hint(for: ref, among: authNames)
                diagnostics.error(
                    "upstream[\(info.index)].auth", "no [auth.\(TOMLText.key(ref))] section for auth \"\(ref)\"" + known
                )
                continue
            }
            if case .header(let headerName, _) = auth.placement,
                let clash = info.headers.first(where: { $0.name.lowercased() == headerName.lowercased() })
            {
                diagnostics.error(
                    ConfigKeyPath.child("upstream[\(info.index)].headers", clash.name),
                    "header \"\(clash.name)\" is also set by auth \"\(ref)\" (placement = \"header\")"
                )
            }
        }
        for auth in config.auth where !used.contains(auth.name) {
            diagnostics.warning(ConfigKeyPath.child("auth", auth.name), "auth section is not used by any upstream")
        }

        // Sink upstream references and paths.
        let upstreamNames = upstreamInfo.compactMap(\.name)
        var pathOwner: [String: Int] = [:]
        for info in sinkInfo {
            for (j, name) in info.upstreams.enumerated() where !upstreamNames.contains(name) {
                diagnostics.error(
                    "sink[\(info.index)].upstreams[\(j)]",
                    "unknown upstream \"\(name)\"" + DidYouMean.hint(for: name, among: upstreamNames)
                )
            }
            guard let path = info.path else { continue }
            if let first = pathOwner[path] {
                diagnostics.error(
                    "sink[\(info.index)].path", "sink[\(first)] and sink[\(info.index)] both use path \"\(path)\""
                )
            } else {
                pathOwner[path] = info.index
            }
            if path == config.daemon.controlSocket {
                diagnostics.error(
                    "sink[\(info.index)].path", "path \"\(path)\" is also the daemon's control_socket"
                )
            }
        }
    }
}
