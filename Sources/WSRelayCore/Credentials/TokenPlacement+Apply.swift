extension TokenPlacement {
    /// Puts `token` into the handshake request of one connection attempt (a value the caller owns: nothing
    /// shared is changed).
    ///
    /// - `header`: `name: prefix + token`, replacing any header of that name (case-insensitive) already in
    ///   the request (e.g. one from the upstream's static headers).
    /// - `query`: `parameter=token`, both percent-encoded (everything but RFC 3986 unreserved characters),
    ///   appended to the target with `?` or `&`, before any fragment.
    /// - `subprotocol`: `prefix + token` appended to the offered subprotocols.
    /// - `cookie`: `name=token` added to the `Cookie` header, merged with an existing one (a cookie of the
    ///   same name there is replaced).
    /// - `message`: the request is unchanged; the rendered auth message is returned, to be sent as the first
    ///   text message after the upgrade.
    ///
    /// - Returns: the auth message for `.message`, otherwise `nil`.
    @discardableResult
    public func apply(token: String, to request: inout HandshakeRequest) -> String? {
        switch self {
        case .header(let name, let prefix):
            request.headers.removeAll { Self.sameName($0.name, name) }
            request.headers.append(HeaderField(name: name, value: prefix + token))
        case .query(let parameter):
            let pair = FormEncoding.component(parameter) + "=" + FormEncoding.component(token)
            request.target = Self.appendingQuery(pair, to: request.target)
        case .subprotocol(let prefix):
            request.subprotocols.append(prefix + token)
        case .cookie(let name):
            let pair = "\(name)=\(token)"
            if let index = request.headers.firstIndex(where: { Self.sameName($0.name, "Cookie") }) {
                var parts = request.headers[index].value.split(separator: ";").map {
                    $0.trimmingHTTPWhitespace
                }.filter { !$0.isEmpty && !$0.hasPrefix(name + "=") && $0 != name }
                parts.append(pair)
                request.headers[index].value = parts.joined(separator: "; ")
            } else {
                request.headers.append(HeaderField(name: "Cookie", value: pair))
            }
        case .message(let template, _, _):
            return AuthMessage.render(template: template, token: token)
        }
        return nil
    }

    /// `apply(token: token.value, to:)`.
    @discardableResult
    public func apply(_ token: IssuedToken, to request: inout HandshakeRequest) -> String? {
        apply(token: token.value, to: &request)
    }

    static func appendingQuery(_ pair: String, to target: String) -> String {
        var path = target
        var fragment = ""
        if let hash = path.firstIndex(of: "#") {
            fragment = String(path[hash...])
            path = String(path[..<hash])
        }
        if !path.contains("?") {
            path += "?" + pair
        } else if path.hasSuffix("?") || path.hasSuffix("&") {
            path += pair
        } else {
            path += "&" + pair
        }
        return path + fragment
    }

    private static func sameName(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count && a.lowercased() == b.lowercased()
    }
}

extension AttemptCredential {
    /// What one attempt carries for `token` under `placement`: the request change (capturing this attempt's
    /// token value only), or the auth message with its reply pattern and timeout.
    /// `renewSkew`: how long before the token's expiry a connection using it should be rotated (the auth's
    /// `refresh_skew`); `renewAt` is nil when the expiry is unknown.
    public init(token: IssuedToken, placement: TokenPlacement, renewSkew: Duration = .zero) {
        let value = token.value
        var message: String? = nil
        var okPattern: String? = nil
        var timeout: Duration? = nil
        if case .message(let template, let ok, let authTimeout) = placement {
            message = AuthMessage.render(template: template, token: value)
            okPattern = ok
            timeout = authTimeout
        }
        self.init(
            generation: token.generation, fingerprint: token.fingerprint,
            apply: { request in placement.apply(token: value, to: &request) },
            authMessage: message, authOKPattern: okPattern, authTimeout: timeout,
            renewAt: token.expiresAt.map { expiry in
                let skew = renewSkew.components
                let micros = skew.seconds * 1_000_000 + skew.attoseconds / 1_000_000_000_000
                return WallClockTime(microsecondsSinceEpoch: expiry.microsecondsSinceEpoch - micros)
            }
        )
    }
}

extension Credential: AttemptCredentialSource {
    /// The upstream driver's entry point: `token(rejected:)` turned into the attempt's request change.
    public func credential(rejected: UInt64?) async throws -> AttemptCredential {
        let token = try await token(rejected: rejected)
        var attempt = AttemptCredential(token: token, placement: settings.placement, renewSkew: settings.refreshSkew)
        // The credential refreshes at `expiry - min(skew, lifetime / 2)`: rotate when a new token exists.
        if let refreshAt = renewTime(for: token) { attempt.renewAt = refreshAt }
        return attempt
    }
}
