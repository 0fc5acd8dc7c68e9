/// Why a URL string was rejected. The message never repeats the URL (it may carry credentials).
public struct URLSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Parses `ws://` and `wss://` URLs into a `WebSocketURL`.
///
/// Rules: the scheme is `ws` or `wss` (any case); a host is required (IPv6 literals in brackets); the port,
/// when given, is 1...65535 (default 80 / 443); no fragment; no user info. The path and query are kept
/// as the request target, `/` when empty. The host is lowercased.
public enum WebSocketURLParser {
    public static func parse(_ s: String) -> Result<WebSocketURL, URLSyntaxError> {
        let parts: GenericURL
        switch GenericURL.split(s, expectedSchemes: "ws:// or wss://") {
        case .success(let p): parts = p
        case .failure(let e): return .failure(e)
        }
        let secure: Bool
        switch parts.scheme {
        case "ws": secure = false
        case "wss": secure = true
        default:
            return .failure(URLSyntaxError("expected a ws:// or wss:// URL, found scheme \"\(parts.scheme)\""))
        }
        return .success(
            WebSocketURL(secure: secure, host: parts.host, port: parts.port ?? (secure ? 443 : 80), target: parts.target)
        )
    }
}

/// The pieces of a hierarchical URL, as far as wsrelay needs them.
struct GenericURL: Equatable {
    /// Lowercased.
    var scheme: String
    /// Lowercased; IPv6 literals without brackets.
    var host: String
    var port: Int?
    /// Path plus query, always starting with `/`.
    var target: String

    /// Splits `s`, rejecting what no wsrelay URL may contain: whitespace, user info, a fragment, a missing
    /// host or a bad port. `expectedSchemes` is only used in messages ("ws:// or wss://").
    static func split(_ s: String, expectedSchemes: String) -> Result<GenericURL, URLSyntaxError> {
        if s.isEmpty {
            return .failure(URLSyntaxError("expected a \(expectedSchemes) URL, found an empty string"))
        }
        if s.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) {
            return .failure(URLSyntaxError("URL must not contain spaces or control characters"))
        }
        guard let schemeEnd = s.range(of: "://") else {
            return .failure(URLSyntaxError("expected a URL starting with \(expectedSchemes)"))
        }
        let scheme = s[s.startIndex..<schemeEnd.lowerBound]
        guard let first = scheme.first, first.isASCII, first.isLetter,
            scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) })
        else {
            return .failure(URLSyntaxError("expected a URL starting with \(expectedSchemes)"))
        }
        let rest = s[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[rest.startIndex..<authorityEnd]
        var target = String(rest[authorityEnd...])

        if authority.contains("@") {
            return .failure(
                URLSyntaxError("URL must not contain user info (user:password@); put credentials in an [auth] section")
            )
        }
        if target.contains("#") {
            return .failure(URLSyntaxError("URL must not contain a fragment (#...)"))
        }

        var host: Substring
        var portText: Substring? = nil
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                return .failure(URLSyntaxError("IPv6 address is missing its closing \"]\""))
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else {
                    return .failure(URLSyntaxError("unexpected characters after the IPv6 address"))
                }
                portText = after.dropFirst()
            }
            guard host.contains(":"),
                host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." })
            else {
                return .failure(URLSyntaxError("invalid IPv6 address in brackets"))
            }
        } else {
            if let colon = authority.firstIndex(of: ":") {
                host = authority[authority.startIndex..<colon]
                portText = authority[authority.index(after: colon)...]
                if portText!.contains(":") {
                    return .failure(URLSyntaxError("IPv6 addresses must be written in brackets, e.g. [::1]"))
                }
            } else {
                host = authority
            }
            if !host.isEmpty,
                !host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._~".contains($0)) })
            {
                return .failure(URLSyntaxError("host contains invalid characters (non-ASCII names must be punycode)"))
            }
        }
        if host.isEmpty {
            return .failure(URLSyntaxError("URL has no host"))
        }
        var port: Int? = nil
        if let portText {
            guard !portText.isEmpty else {
                return .failure(URLSyntaxError("port is empty after \":\""))
            }
            guard portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let p = Int(portText),
                (1...65535).contains(p)
            else {
                return .failure(URLSyntaxError("port must be a number from 1 to 65535"))
            }
            port = p
        }
        if target.isEmpty || target.hasPrefix("?") {
            target = "/" + target
        }
        return .success(GenericURL(scheme: scheme.lowercased(), host: host.lowercased(), port: port, target: target))
    }

    /// Validates an `http://` or `https://` URL (token endpoints).
    static func validateHTTP(_ s: String) -> URLSyntaxError? {
        switch split(s, expectedSchemes: "http:// or https://") {
        case .failure(let e): return e
        case .success(let u):
            if u.scheme != "http" && u.scheme != "https" {
                return URLSyntaxError("expected an http:// or https:// URL, found scheme \"\(u.scheme)\"")
            }
            return nil
        }
    }

    /// Validates a proxy URL: `http://host:port`, nothing after the authority but an optional `/`.
    static func validateProxy(_ s: String) -> URLSyntaxError? {
        switch split(s, expectedSchemes: "http://") {
        case .failure(let e): return e
        case .success(let u):
            if u.scheme != "http" {
                return URLSyntaxError("expected an http://host:port proxy URL, found scheme \"\(u.scheme)\"")
            }
            if u.target != "/" {
                return URLSyntaxError("a proxy URL has no path or query: expected http://host:port")
            }
            return nil
        }
    }
}
