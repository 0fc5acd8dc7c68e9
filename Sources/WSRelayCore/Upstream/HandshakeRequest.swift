import NIOHTTP1

/// The HTTP upgrade request of one connection attempt.
///
/// Built fresh for every attempt from the upstream's settings plus that attempt's credential, so a token is
/// never stored anywhere another attempt could pick it up.
public struct HandshakeRequest: Sendable {
    public var url: WebSocketURL
    /// Path and query sent on the request line.
    public var target: String
    public var headers: [HeaderField]
    public var subprotocols: [String]
    public var origin: String?
    /// What is offered in `Sec-WebSocket-Extensions` and how the answer is judged.
    public var deflate: DeflateNegotiation

    public init(url: WebSocketURL, headers: [HeaderField] = [], subprotocols: [String] = [], origin: String? = nil,
                compression: CompressionMode = .off) {
        self.url = url
        self.target = url.target
        self.headers = headers
        self.subprotocols = subprotocols
        self.origin = origin
        self.deflate = DeflateNegotiation(mode: compression)
    }

    public init(settings: UpstreamSettings) {
        self.init(url: settings.url, headers: settings.headers, subprotocols: settings.subprotocols,
                  origin: settings.origin, compression: settings.compression)
    }

    /// `Host` carries the port only when it is not the scheme's default; IPv6 literals go in brackets.
    var hostHeader: String {
        let host = url.host.contains(":") ? "[\(url.host)]" : url.host
        let defaultPort = url.secure ? 443 : 80
        return url.port == defaultPort ? host : "\(host):\(url.port)"
    }

    func head() -> HTTPRequestHead {
        var fields = HTTPHeaders()
        fields.add(name: "Host", value: hostHeader)
        if let origin { fields.add(name: "Origin", value: origin) }
        if !subprotocols.isEmpty { fields.add(name: "Sec-WebSocket-Protocol", value: subprotocols.joined(separator: ", ")) }
        if let offer = deflate.requestHeaderValue { fields.add(name: "Sec-WebSocket-Extensions", value: offer) }
        fields.add(name: "User-Agent", value: "wsrelay/\(WSRelayVersion.string)")
        for header in headers { fields.add(name: header.name, value: header.value) }
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: fields)
    }
}
