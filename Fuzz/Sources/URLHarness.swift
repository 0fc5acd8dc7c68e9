@testable import WSRelayCore

extension FuzzTargets {
    /// Upstream, token endpoint and proxy URLs, proxy selection and `no_proxy` matching. Input: URL, NUL,
    /// proxy value, NUL, `no_proxy` value.
    static let url = FuzzTarget(name: "url", summary: "WebSocketURLParser, GenericURL, ProxyResolver") { bytes in
        let f = fields(bytes, count: 3)
        let (text, proxy, noProxy) = (f[0], f[1], f[2])
        if case .success(let parsed) = WebSocketURLParser.parse(text) {
            check((1...65535).contains(parsed.port), "port \(parsed.port) out of range")
            check(parsed.target.hasPrefix("/"), "request target \(parsed.target.debugDescription) without /")
            check(!parsed.host.isEmpty, "empty host accepted")
            _ = ProxyResolver.resolve(
                for: parsed, configured: nil,
                environment: ["https_proxy": proxy, "http_proxy": proxy, "no_proxy": noProxy]
            )
            _ = ProxyResolver.isExcluded(host: parsed.host, noProxy: noProxy)
        }
        _ = GenericURL.validateHTTP(text)
        _ = GenericURL.validateProxy(proxy)
        if let target = ProxyResolver.parse(proxy) {
            check((1...65535).contains(target.port), "proxy port \(target.port) out of range")
        }
    }
}
