/// Where an upstream connection goes first when it must cross an HTTP proxy.
public struct ProxyTarget: Sendable, Equatable, CustomStringConvertible {
    public init(host: String, port: Int, authorization: String? = nil) {
        self.host = host
        self.port = port
        self.authorization = authorization
    }

    public var host: String
    public var port: Int
    /// `Proxy-Authorization` value from `user:password@` in the proxy URL, if any (never logged).
    public var authorization: String?

    public var description: String { "\(host):\(port)" }
}

/// Chooses the proxy for one upstream the way curl and most HTTP tooling do, so an operator's existing
/// environment works unchanged: `proxy` in the config wins ("" = never); otherwise `https_proxy`/`HTTPS_PROXY`
/// for wss:// and `http_proxy`/`HTTP_PROXY` for ws://, unless the host matches `no_proxy`/`NO_PROXY`
/// (comma-separated names or domain suffixes, `*` for all).
public enum ProxyResolver {
    public static func resolve(for url: WebSocketURL, configured: String?, environment: [String: String]) -> ProxyTarget? {
        if let configured { return configured.isEmpty ? nil : parse(configured) }
        let keys = url.secure ? ["https_proxy", "HTTPS_PROXY"] : ["http_proxy", "HTTP_PROXY"]
        guard let value = keys.lazy.compactMap({ environment[$0] }).first(where: { !$0.isEmpty }) else { return nil }
        let exclusions = environment["no_proxy"] ?? environment["NO_PROXY"] ?? ""
        if isExcluded(host: url.host, noProxy: exclusions) { return nil }
        return parse(value)
    }

    static func isExcluded(host: String, noProxy: String) -> Bool {
        let name = host.lowercased()
        for raw in noProxy.split(separator: ",") {
            var entry = raw.trimmingHTTPWhitespace.lowercased()
            if entry == "*" { return true }
            if let colon = entry.lastIndex(of: ":"), !entry.contains("]"), entry.filter({ $0 == ":" }).count == 1 {
                entry = String(entry[..<colon])  // "host:port" entries match the host
            }
            if entry.hasPrefix(".") { entry.removeFirst() }
            guard !entry.isEmpty else { continue }
            if name == entry || name.hasSuffix("." + entry) { return true }
        }
        return false
    }

    /// `http://[user:pass@]host[:port][/]`; the port defaults to 80.
    static func parse(_ value: String) -> ProxyTarget? {
        var rest = Substring(value)
        if let scheme = rest.range(of: "://") {
            guard rest[..<scheme.lowerBound].lowercased() == "http" else { return nil }
            rest = rest[scheme.upperBound...]
        }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        var authorization: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = String(rest[..<at]).percentDecoded
            authorization = "Basic " + Base64.encode(Array(userinfo.utf8))
            rest = rest[rest.index(after: at)...]
        }
        var host = String(rest)
        var port = 80
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") { port = Int(after.dropFirst()) ?? 0 }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            port = Int(host[host.index(after: colon)...]) ?? 0
            host = String(host[..<colon])
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
        return ProxyTarget(host: host, port: port, authorization: authorization)
    }
}

extension String {
    /// Percent-decoding for URL userinfo, without Foundation.
    var percentDecoded: String {
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let h = iterator.next(), let l = iterator.next(),
               let value = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
