import Testing
@testable import WSRelayCore

@Suite struct ProxyResolverTests {
    let secure = WebSocketURL(secure: true, host: "feed.example.com", port: 443, target: "/")
    let plain = WebSocketURL(secure: false, host: "feed.example.com", port: 80, target: "/")

    @Test func environmentPerScheme() {
        let env = ["https_proxy": "http://proxy:3128", "HTTP_PROXY": "http://plainproxy:8080/"]
        #expect(ProxyResolver.resolve(for: secure, configured: nil, environment: env) == ProxyTarget(host: "proxy", port: 3128))
        #expect(ProxyResolver.resolve(for: plain, configured: nil, environment: env) == ProxyTarget(host: "plainproxy", port: 8080))
        #expect(ProxyResolver.resolve(for: secure, configured: nil, environment: [:]) == nil)
    }

    @Test func configuredWinsAndEmptyDisables() {
        let env = ["https_proxy": "http://proxy:3128"]
        #expect(ProxyResolver.resolve(for: secure, configured: "", environment: env) == nil)
        #expect(ProxyResolver.resolve(for: secure, configured: "http://other:1", environment: env)?.host == "other")
    }

    @Test func noProxyMatching() {
        #expect(ProxyResolver.isExcluded(host: "feed.example.com", noProxy: "example.com"))
        #expect(ProxyResolver.isExcluded(host: "feed.example.com", noProxy: " .example.com "))
        #expect(ProxyResolver.isExcluded(host: "feed.example.com", noProxy: "other,feed.example.com:443"))
        #expect(ProxyResolver.isExcluded(host: "anything", noProxy: "*"))
        #expect(!ProxyResolver.isExcluded(host: "notexample.com", noProxy: "example.com"))
        #expect(!ProxyResolver.isExcluded(host: "feed.example.com", noProxy: ""))
    }

    @Test func parsing() {
        #expect(ProxyResolver.parse("proxy:3128") == ProxyTarget(host: "proxy", port: 3128))
        #expect(ProxyResolver.parse("http://[::1]:3128") == ProxyTarget(host: "::1", port: 3128))
        #expect(ProxyResolver.parse("http://proxy") == ProxyTarget(host: "proxy", port: 80))
        #expect(ProxyResolver.parse("socks5://proxy:1080") == nil)
        let auth = ProxyResolver.parse("http://user:p%40ss@proxy:3128")
        #expect(auth?.authorization == "Basic " + Base64.encode(Array("user:p@ss".utf8)))
        #expect(auth?.description == "proxy:3128", "credentials must not be printed")
    }
}
