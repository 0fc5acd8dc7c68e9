/// Small value checks shared by the loader. Each returns a problem message, or nil when the value is fine.
enum ConfigValidators {
    /// Absolute filesystem path.
    static func absolutePathProblem(_ s: String) -> String? {
        if s.isEmpty { return "expected an absolute path, found an empty string" }
        if s.unicodeScalars.contains("\0") { return "path must not contain NUL characters" }
        if !s.hasPrefix("/") { return "expected an absolute path (starting with /), found \(ConfigValueDescription.quote(s))" }
        return nil
    }

    /// Upstream and auth names: `[A-Za-z0-9_.-]{1,64}`.
    static func nameProblem(_ s: String) -> String? {
        let ok =
            (1...64).contains(s.unicodeScalars.count)
            && s.unicodeScalars.allSatisfy { isAlphanumeric($0) || $0 == "_" || $0 == "." || $0 == "-" }
        return ok
            ? nil
            : "invalid name \(ConfigValueDescription.quote(s)): use 1 to 64 characters from A-Z, a-z, 0-9, \"_\", \".\" and \"-\""
    }

    /// HTTP token (RFC 9110 `token`): header names, subprotocols.
    static func isHTTPToken(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { isAlphanumeric($0) || "!#$%&'*+-.^_`|~".unicodeScalars.contains($0) }
    }

    /// Header names wsrelay sets itself.
    static func isReservedHeader(_ name: String) -> Bool {
        let lower = name.lowercased()
        return ["host", "upgrade", "connection"].contains(lower) || lower.hasPrefix("sec-websocket-")
    }

    /// A header field value must not contain CR, LF or NUL.
    static func headerValueProblem(_ s: String) -> String? {
        s.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" }
            ? "header value must not contain CR, LF or NUL characters" : nil
    }

    static func environmentVariableProblem(_ s: String) -> String? {
        guard let first = s.unicodeScalars.first,
            first == "_" || isLetter(first),
            s.unicodeScalars.allSatisfy({ isAlphanumeric($0) || $0 == "_" })
        else {
            return "invalid environment variable name \(ConfigValueDescription.quote(s)): expected letters, digits and \"_\""
        }
        return nil
    }

    /// A systemd credential name (a file name inside `$CREDENTIALS_DIRECTORY`).
    static func credentialNameProblem(_ s: String) -> String? {
        if s.isEmpty || s == "." || s == ".." || s.contains("/") || s.unicodeScalars.contains("\0")
            || s.utf8.count > 255
        {
            return "invalid credential name \(ConfigValueDescription.quote(s)): expected a file name without \"/\""
        }
        return nil
    }

    /// `[metrics] listen`: a loopback `host:port` or an absolute Unix socket path.
    static func metricsListenProblem(_ s: String) -> String? {
        let rule =
            "only a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT) or an absolute Unix socket "
            + "path is allowed, found \(ConfigValueDescription.quote(s))"
        if s.hasPrefix("/") { return absolutePathProblem(s) }
        let host: Substring
        let port: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return rule }
            host = s[s.index(after: s.startIndex)..<close]
            let after = s[s.index(after: close)...]
            guard after.first == ":" else { return rule }
            port = after.dropFirst()
            guard host == "::1" || host == "0:0:0:0:0:0:0:1" else { return rule }
        } else {
            guard let colon = s.lastIndex(of: ":") else { return rule }
            host = s[s.startIndex..<colon]
            port = s[s.index(after: colon)...]
            guard host.lowercased() == "localhost" || isLoopbackIPv4(host) else { return rule }
        }
        guard port.count <= 5, port.allSatisfy({ $0.isASCII && $0.isNumber }), let p = Int(port), (1...65535).contains(p)
        else {
            return "port must be a number from 1 to 65535, found \(ConfigValueDescription.quote(s))"
        }
        return nil
    }

    static func isLoopbackIPv4(_ s: Substring) -> Bool {
        let octets = s.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return false }
        for octet in octets {
            guard (1...3).contains(octet.count), octet.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(octet),
                v <= 255
            else { return false }
        }
        return octets[0] == "127"
    }

    /// `command` argv[0]: an absolute path or a bare program name looked up in `PATH`.
    static func programProblem(_ s: String) -> String? {
        if s.isEmpty { return "program must not be empty" }
        if s.hasPrefix("/") { return nil }
        if s.contains("/") {
            return "program must be an absolute path or a bare name looked up in PATH, found \(ConfigValueDescription.quote(s))"
        }
        return nil
    }

    private static func isLetter(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z")
    }

    private static func isAlphanumeric(_ c: Unicode.Scalar) -> Bool {
        isLetter(c) || (c >= "0" && c <= "9")
    }
}
