/// Judges the server's answer to the upgrade request the way the daemon will experience it, and says in
/// plain words what a refusal usually means (credentials, a proxy that strips `Upgrade`, a redirect).
public struct UpgradeResponseCheck: Sendable {
    public var version: String
    public var status: Int
    public var reason: String
    /// In the order received.
    public var headers: [(String, String)]

    public init(version: String = "HTTP/1.1", status: Int, reason: String, headers: [(String, String)]) {
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
    }

    /// The response headers worth showing, in this order.
    static let shownHeaders = [
        "Upgrade", "Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Version", "Retry-After", "WWW-Authenticate", "Proxy-Authenticate", "Location", "Server", "Via",
    ]

    public var statusLine: String {
        reason.isEmpty ? "\(version) \(status)" : "\(version) \(status) \(reason)"
    }

    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        let values = headers.filter { $0.0.lowercased() == lowered }.map(\.1)
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }

    /// - Parameters:
    ///   - key: the `Sec-WebSocket-Key` that was sent.
    ///   - offered: the subprotocols that were offered (a token placed as a subprotocol is among them).
    ///   - hasCredentials: whether the request carried the upstream's credential.
    ///   - deflate: the permessage-deflate offer that was sent, to judge the answer as the daemon will.
    public func stage(elapsed: Duration, key: String, offered: [String], hasCredentials: Bool,
                      deflate: DeflateNegotiation = DeflateNegotiation(mode: .off)) -> ProbeStage {
        var details: [ProbeStage.Detail] = []
        let expectedAccept = WebSocketAccept.expected(forKey: key)
        for name in Self.shownHeaders {
            guard var value = header(name) else { continue }
            if name == "Sec-WebSocket-Accept" {
                value += value == expectedAccept ? " (matches the key)" : " (does NOT match the key; expected \(expectedAccept))"
            }
            details.append(.init(name, value))
        }
        func result(_ verdict: ProbeStage.Verdict, _ text: String) -> ProbeStage {
            ProbeStage(.upgrade, verdict, elapsed: elapsed, "\(statusLine): \(text)", details: details)
        }

        if status == 101 {
            guard let upgrade = header("Upgrade"), upgrade.lowercased().split(separator: ",").contains(where: {
                $0.trimmingHTTPWhitespace.hasPrefix("websocket")
            }) else {
                return result(.failed, "101 without \"Upgrade: websocket\" (a broken proxy or server)")
            }
            guard let accept = header("Sec-WebSocket-Accept") else {
                return result(.failed, "no Sec-WebSocket-Accept header: not a valid WebSocket handshake")
            }
            guard accept == expectedAccept else {
                return result(.failed, "Sec-WebSocket-Accept does not match the key (a proxy or server that rewrites the handshake)")
            }
            var notes = ["Sec-WebSocket-Accept matches"]
            var verdict = ProbeStage.Verdict.ok
            if let chosen = header("Sec-WebSocket-Protocol") {
                guard offered.contains(chosen) else {
                    return result(.failed, "server chose subprotocol \"\(chosen)\", which was not offered")
                }
                notes.append("subprotocol \"\(chosen)\"")
            } else if !offered.isEmpty {
                notes.append("no subprotocol chosen (offered \(offered.count))")
            }
            let extensions = headers.filter { $0.0.lowercased() == "sec-websocket-extensions" }.map(\.1)
            switch deflate.judge(extensions) {
            case .success(let agreed?):
                notes.append("compressed (\(agreed))")
            case .success(nil):
                if deflate.mode != .off { notes.append("uncompressed (the server declined permessage-deflate)") }
            case .failure(let error):
                return result(.failed, "\(error.message); the daemon fails such a connection (close code \(error.closeCode))")
            }
            if !(header("Connection")?.lowercased().contains("upgrade") ?? false) {
                notes.append("no \"Connection: upgrade\" header (tolerated)")
                verdict = .warning
            }
            return result(verdict, notes.joined(separator: ", "))
        }

        switch status {
        case 401, 403:
            var text = "credentials rejected"
            if !hasCredentials { text += " (this upstream has no auth configured: the server wants credentials)" }
            else if let challenge = header("WWW-Authenticate") { text += " (\(challenge))" }
            return result(.failed, text)
        case 407:
            return result(.failed, "a proxy wants credentials (Proxy-Authenticate); set them in the proxy URL")
        case 426:
            return result(.failed, "the server wants another WebSocket version\(header("Sec-WebSocket-Version").map { " (\($0))" } ?? "")")
        case 429, 503:
            let wait = header("Retry-After").map { "; Retry-After: \($0)" } ?? ""
            return result(.failed, "the server is busy or rate-limiting\(wait)")
        case 404:
            return result(.failed, "no WebSocket endpoint at this path")
        case 300...399:
            let target = header("Location").map { " to \($0)" } ?? ""
            return result(.failed, "redirect\(target); wsrelay does not follow redirects: configure the final URL")
        case 200...299:
            if header("Upgrade") == nil {
                return result(.failed, "the server answered without switching protocols and without an Upgrade header: a proxy or load balancer is probably stripping the Upgrade header, or this URL is not a WebSocket endpoint")
            }
            return result(.failed, "the server did not switch protocols")
        case 400:
            return result(.failed, "the server refused the handshake as a bad request (wrong path or a required header missing?)")
        case 500...599:
            return result(.failed, "server error")
        default:
            return result(.failed, "the server refused the upgrade")
        }
    }
}
