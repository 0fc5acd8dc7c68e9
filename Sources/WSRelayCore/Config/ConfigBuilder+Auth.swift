import TOMLKit

extension ConfigBuilder {
    /// `[auth.NAME]` sections, in file order.
    func authSections(_ authReader: TableReader) -> [AuthSettings] {
        var result: [AuthSettings] = []
        for name in order.authOrder(authReader.keys) {
            let path = authReader.keyPath(name)
            guard let value = authReader.raw(name) else { continue }
            authNamesSeen.append(name)
            if let problem = ConfigValidators.nameProblem(name) {
                diagnostics.error(path, problem)
            }
            guard let table = value.table else {
                diagnostics.error(
                    path,
                    "expected a table ([auth.\(TOMLText.key(name))] section), found "
                        + ConfigValueDescription.describe(value, secret: true)
                )
                continue
            }
            result.append(auth(TableReader(table: table, path: path, diagnostics: diagnostics), name: name))
        }
        return result
    }

    /// One `[auth.NAME]` section. When it has errors the result holds placeholders (and is never used).
    func auth(_ r: TableReader, name: String) -> AuthSettings {
        let type = r.choice("type", ConfigSchema.authTypes, required: true)
        let placementName = r.choice("placement", ConfigSchema.placements)

        // `timeout` is shared: the command timeout for `command`, the HTTP timeout otherwise.
        let timeout = r.duration("timeout")
        var provider: CredentialProvider? = nil
        switch type {
        case "static":
            if let secret = secret(r, "token", required: true, alias: "credential") {
                provider = .staticToken(secret)
            }
        case "file":
            let path = r.absolutePath("path", required: true)
            let format = r.enumValue("format", TokenFileFormat.self) ?? .text
            if let path { provider = .file(path: path, format: format) }
        case "command":
            let argv = r.stringArray("command", required: true, elementExpected: "a string") { s in
                s.unicodeScalars.contains("\0") ? "argument must not contain NUL characters" : nil
            }
            if let argv {
                if argv.isEmpty {
                    r.error("command", "must not be empty: expected [\"/path/to/program\", \"arg\", ...]")
                } else if let problem = ConfigValidators.programProblem(argv[0]) {
                    diagnostics.error(ConfigKeyPath.index(r.keyPath("command"), 0), problem)
                } else {
                    provider = .command(argv: argv, timeout: timeout ?? .seconds(10))
                }
            }
        case "oauth2":
            if let s = oauth2(r) { provider = .oauth2(s) }
        case "http_json":
            if let s = httpJSON(r, authName: name) { provider = .httpJSON(s) }
        default:
            break  // missing or invalid type, already reported
        }

        var placement = TokenPlacement.header(name: "Authorization", prefix: "Bearer ")
        switch placementName ?? (r.contains("placement") ? nil : "header") {
        case "header":
            let header = r.read("header", expected: "a header name string") { v -> ConfigConversion<String> in
                guard let s = v.string else { return .wrongType }
                guard ConfigValidators.isHTTPToken(s) else {
                    return .invalid("invalid header name \(ConfigValueDescription.quote(s)): expected an HTTP token")
                }
                if ConfigValidators.isReservedHeader(s) {
                    return .invalid("header \"\(s)\" is reserved: wsrelay sets it itself")
                }
                return .ok(s)
            }
            let prefix = r.string("prefix", allowEmpty: true)
            placement = .header(name: header ?? "Authorization", prefix: prefix ?? "Bearer ")
        case "query":
            let parameter = r.string("query_param")
            placement = .query(parameter: parameter ?? "access_token")
            r.warning(
                "placement",
                "placement = \"query\" puts the token in the URL; URLs leak into logs and proxies"
            )
        case "subprotocol":
            placement = .subprotocol(prefix: r.string("prefix", allowEmpty: true) ?? "")
        case "cookie":
            let cookie = r.read("cookie", expected: "a cookie name string") { v -> ConfigConversion<String> in
                guard let s = v.string else { return .wrongType }
                guard ConfigValidators.isHTTPToken(s) else {
                    return .invalid("invalid cookie name \(ConfigValueDescription.quote(s)): expected an HTTP token")
                }
                return .ok(s)
            }
            placement = .cookie(name: cookie ?? "token")
        case "message":
            let template = r.read("auth_message", required: true, expected: "a message template containing {token}") {
                v -> ConfigConversion<String> in
                guard let s = v.string else { return .wrongType }
                guard s.contains("{token}") else {
                    return .invalid("auth_message must contain \"{token}\" where the token goes")
                }
                return .ok(s)
            }
            let ok = r.string("auth_ok")
            let authTimeout = r.duration("auth_timeout") ?? .seconds(10)
            placement = .message(template: template ?? "{token}", okPattern: ok, timeout: authTimeout)
        default:
            break  // invalid placement, already reported
        }

        var settings = AuthSettings(name: name, provider: provider ?? .staticToken(.inline("")))
        settings.placement = placement
        if let v = r.duration("refresh_skew", minimum: .zero) { settings.refreshSkew = v }
        if let timeout { settings.timeout = timeout }
        if let v = r.duration("retry_initial") { settings.retryInitial = v }
        if let v = r.duration("retry_max") { settings.retryMax = v }
        if settings.retryMax < settings.retryInitial, r.contains("retry_initial") || r.contains("retry_max") {
            r.error(
                "retry_max",
                "must be at least retry_initial (\(DurationParser.format(settings.retryInitial))), found "
                    + DurationParser.format(settings.retryMax)
            )
        }
        if let t = r.subtable("tls") { settings.tls = tls(t) }

        finishAuth(r, type: type, placement: placementName ?? (r.contains("placement") ? nil : "header"))
        return settings
    }

    /// Reports unknown keys, and keys that belong to another type or placement.
    private func finishAuth(_ r: TableReader, type: String?, placement: String?) {
        var allowed = ConfigSchema.authCommon
        if let placement {
            for (key, placements) in ConfigSchema.placementKeys where !placements.contains(placement) {
                allowed.remove(key)
            }
        }
        if let type {
            allowed.formUnion(ConfigSchema.authByType[type] ?? [])
        } else {
            allowed = ConfigSchema.authAll  // type unknown: do not guess which keys are misplaced
        }
        r.finish(allowed: allowed) { key in
            if let placements = ConfigSchema.placementKeys[key], let placement {
                let valid = placements.map { "placement = \"\($0)\"" }.joined(separator: " or ")
                return "\(key) is only valid with \(valid) (this section uses placement = \"\(placement)\")"
            }
            let owners = ConfigSchema.types(owning: key, in: ConfigSchema.authByType, order: ConfigSchema.authTypes)
            if !owners.isEmpty, let type {
                let list = owners.map { "\"\($0)\"" }.joined(separator: " or ")
                return "\(key) belongs to auth type \(list), not \"\(type)\""
            }
            return nil
        }
    }

    // MARK: - Providers

    func oauth2(_ r: TableReader) -> OAuth2Settings? {
        let tokenURL = url(r, "token_url", required: true, expected: "an http:// or https:// URL string") {
            GenericURL.validateHTTP($0)
        }
        let grantGiven = r.contains("grant")
        let grant = r.enumValue("grant", OAuth2Grant.self)
        var s = OAuth2Settings(tokenURL: tokenURL ?? "")
        s.grant = grant ?? .refreshToken
        s.clientID = r.string("client_id")
        s.clientSecret = secret(r, "client_secret", required: false)
        if let v = r.enumValue("client_auth", ClientAuthMethod.self) { s.clientAuth = v }
        s.scope = r.string("scope")
        s.audience = r.string("audience")

        let effectiveGrant: OAuth2Grant? = grant ?? (grantGiven ? nil : .refreshToken)
        switch effectiveGrant {
        case .refreshToken:
            s.refreshToken = secret(r, "refresh_token", required: true)
        case .clientCredentials:
            let given = ConfigSchema.secretKeys("refresh_token").filter { r.contains($0) }
            for key in given {
                r.markConsumed(key)
                r.error(key, "\(key) is not used with grant = \"client_credentials\"")
            }
            if s.clientID == nil, !r.contains("client_id") {
                r.error("client_id", "grant = \"client_credentials\" requires client_id")
            }
            if s.clientSecret == nil, !ConfigSchema.secretKeys("client_secret").contains(where: r.contains) {
                r.error(
                    "client_secret",
                    "grant = \"client_credentials\" requires a client secret: set one of "
                        + Self.secretOptions("client_secret")
                )
            }
        case nil:
            s.refreshToken = secret(r, "refresh_token", required: false)
        }
        if s.clientAuth == .basic, s.clientID == nil, !r.contains("client_id") {
            r.error("client_id", "client_auth = \"basic\" requires client_id")
        }
        return tokenURL == nil ? nil : s
    }

    func httpJSON(_ r: TableReader, authName: String) -> HTTPJSONSettings? {
        let endpoint = url(r, "url", required: true, expected: "an http:// or https:// URL string") {
            GenericURL.validateHTTP($0)
        }
        var s = HTTPJSONSettings(url: endpoint ?? "")
        s.refreshToken = secret(r, "refresh_token", required: false)
        if let h = r.subtable("headers") {
            s.headers = headers(h, orderedNames: order.authHeaderOrder(h.keys, authName: authName))
        }
        if let v = r.string("token_field") { s.tokenField = v }
        if let v = r.string("expires_in_field") { s.expiresInField = v }
        if let v = r.string("expires_at_field") { s.expiresAtField = v }
        if let v = r.string("refresh_token_field") { s.refreshTokenField = v }
        return endpoint == nil ? nil : s
    }

    // MARK: - Secrets

    static func secretOptions(_ base: String) -> String {
        let keys = ConfigSchema.secretKeys(base)
        return keys.dropLast().joined(separator: ", ") + " or " + keys.last!
    }

    /// A secret given as exactly one of `base`, `base_file`, `base_env`, `base_credential` (or `alias`, another
    /// spelling of `base_credential`).
    func secret(_ r: TableReader, _ base: String, required: Bool, alias: String? = nil) -> SecretSource? {
        enum Kind { case inline, file, environment, credential }
        var variants: [(key: String, kind: Kind)] = [
            (base, .inline), (base + "_file", .file), (base + "_env", .environment), (base + "_credential", .credential),
        ]
        if let alias { variants.append((alias, .credential)) }
        let present = variants.filter { r.contains($0.key) }

        if present.count > 1 {
            present.forEach { r.markConsumed($0.key) }
            r.error(
                base,
                "conflicting secret sources: " + present.map(\.key).joined(separator: ", ")
                    + " are all set; give exactly one of " + Self.secretOptions(base)
            )
            return nil
        }
        guard let given = present.first else {
            if required {
                r.error(base, "a \(base) is required: set one of " + Self.secretOptions(base))
            }
            return nil
        }
        switch given.kind {
        case .inline:
            guard let value = r.string(given.key, secret: true) else { return nil }
            let others = ConfigSchema.secretKeys(base).dropFirst()
            r.warning(
                base,
                "inline secret in config file; prefer " + others.dropLast().joined(separator: ", ") + " or "
                    + others.last!
            )
            return .inline(value)
        case .file:
            return r.absolutePath(given.key).map(SecretSource.file)
        case .environment:
            let name = r.read(given.key, expected: "an environment variable name") { v -> ConfigConversion<String> in
                guard let s = v.string else { return .wrongType }
                if let problem = ConfigValidators.environmentVariableProblem(s) { return .invalid(problem) }
                return .ok(s)
            }
            guard let name else { return nil }
            if let environment, environment[name] == nil {
                r.warning(given.key, "environment variable \(name) is not set in this environment")
            }
            return .environment(name)
        case .credential:
            let name = r.read(given.key, expected: "a systemd credential name") { v -> ConfigConversion<String> in
                guard let s = v.string else { return .wrongType }
                if let problem = ConfigValidators.credentialNameProblem(s) { return .invalid(problem) }
                return .ok(s)
            }
            return name.map(SecretSource.systemdCredential)
        }
    }
}
