import Foundation
import TOMLKit

extension ConfigBuilder {
    /// One `[[upstream]]` section.
    func upstream(_ r: TableReader, index: Int, count: Int) -> UpstreamSettings {
        let name = r.read("name", required: true, expected: "a string") { v -> ConfigConversion<String> in
            guard let s = v.string else { return .wrongType }
            if let problem = ConfigValidators.nameProblem(s) { return .invalid(problem) }
            return .ok(s)
        }
        let url = r.read("url", required: true, expected: "a ws:// or wss:// URL string") { v -> ConfigConversion<WebSocketURL> in
            guard let s = v.string else { return .wrongType }
            switch WebSocketURLParser.parse(s) {
            case .success(let u): return .ok(u)
            case .failure(let e): return .invalid("invalid URL: \(e.message)")
            }
        }
        var u = UpstreamSettings(
            name: name ?? "", url: url ?? WebSocketURL(secure: false, host: "invalid", port: 80, target: "/")
        )

        u.auth = r.string("auth")
        if let v = r.stringArray("subprotocols", elementExpected: "a subprotocol name", validate: { s in
            ConfigValidators.isHTTPToken(s)
                ? nil : "invalid subprotocol \(ConfigValueDescription.quote(s)): expected a non-empty HTTP token"
        }) {
            u.subprotocols = v
        }
        if let h = r.subtable("headers") {
            u.headers = headers(h, orderedNames: order.upstreamHeaderOrder(h.keys, upstreamIndex: index, upstreamCount: count))
        }
        u.origin = r.string("origin")
        if let v = r.duration("ping_interval", minimum: .zero) {
            u.pingInterval = v
            if v == .zero {
                r.warning(
                    "ping_interval",
                    "pings are disabled (ping_interval = \"0s\"); a dead connection is only noticed through idle_timeout or TCP"
                )
            }
        }
        if let v = r.duration("pong_timeout") { u.pongTimeout = v }
        u.appPing = r.string("app_ping")
        u.idleTimeout = r.duration("idle_timeout")
        if let v = r.duration("connect_timeout") { u.connectTimeout = v }
        if let v = r.duration("handshake_timeout") { u.handshakeTimeout = v }
        if let v = r.byteSize("max_message_size", min: 1 << 10, max: 1 << 30) { u.maxMessageSize = v }
        if let v = r.enumValue("compression", CompressionMode.self) { u.compression = v }
        if let v = subscribe(r) { u.subscribe = v }

        let refreshCodes = r.intArray("refresh_on_close_codes", range: 1000...4999, what: "a close code")
        if let v = refreshCodes { u.refreshOnCloseCodes = v.map { UInt16($0) } }
        if let v = r.intArray("refresh_on_status", range: 400...599, what: "an HTTP status") { u.refreshOnStatus = v }
        let fatalCodes = r.intArray("fatal_close_codes", range: 1000...4999, what: "a close code")
        if let v = fatalCodes { u.fatalCloseCodes = v.map { UInt16($0) } }
        if refreshCodes != nil || !r.contains("refresh_on_close_codes"), fatalCodes != nil {
            let overlap = u.fatalCloseCodes.filter { u.refreshOnCloseCodes.contains($0) }
            var reported = Set<UInt16>()
            for code in overlap where reported.insert(code).inserted {
                let source = r.contains("refresh_on_close_codes") ? "" : " (its default)"
                r.error(
                    "fatal_close_codes",
                    "close code \(code) is in both refresh_on_close_codes\(source) and fatal_close_codes"
                )
            }
        }

        if let v = r.bool("reconnect_before_expiry") { u.reconnectBeforeExpiry = v }
        u.proxy = r.read("proxy", expected: "a proxy URL string such as \"http://proxy:3128\", or \"\"") { v in
            guard let s = v.string else { return .wrongType }
            if s.isEmpty { return .ok(s) }
            if let e = GenericURL.validateProxy(s) { return .invalid("invalid proxy URL: \(e.message)") }
            return .ok(s)
        }
        if let rr = r.subtable("reconnect") { u.reconnect = reconnect(rr) }
        if let t = r.subtable("tls") {
            u.tls = tls(t)
            if let url, !url.secure {
                r.warning("tls", "TLS settings are not used with a ws:// URL")
            }
        }
        r.finish(allowed: ConfigSchema.upstream)

        upstreamInfo.append(UpstreamInfo(index: index, name: name, authReference: u.auth, headers: u.headers))
        return u
    }

    /// `[upstream.reconnect]`.
    func reconnect(_ r: TableReader) -> ReconnectSettings {
        var s = ReconnectSettings()
        if let v = r.duration("initial") { s.initial = v }
        let maxValue = r.duration("max")
        if let v = maxValue { s.max = v }
        if let v = r.double("multiplier") {
            if v < 1.0 {
                r.error("multiplier", "must be at least 1.0, found \(v)")
            } else {
                s.multiplier = v
            }
        }
        if let v = r.duration("reset_after", minimum: .zero) { s.resetAfter = v }
        if s.max < s.initial, r.contains("initial") || r.contains("max") {
            r.error(
                "max",
                "must be at least initial (\(DurationParser.format(s.initial))), found \(DurationParser.format(s.max))"
            )
        }
        r.finish(allowed: ConfigSchema.reconnect)
        return s
    }

    /// `subscribe = ["text", { text = "..." }, { binary = "<base64>" }]`.
    func subscribe(_ r: TableReader) -> [OutgoingMessage]? {
        guard let value = r.raw("subscribe") else { return nil }
        let path = r.keyPath("subscribe")
        guard let array = value.array else {
            diagnostics.error(
                path,
                "expected an array of messages (strings or { text = \"...\" } / { binary = \"<base64>\" } tables), "
                    + "found \(ConfigValueDescription.describe(value, secret: false))"
            )
            return nil
        }
        var result: [OutgoingMessage] = []
        for j in 0..<array.count {
            let element = array[j]
            let elementPath = ConfigKeyPath.index(path, j)
            if let s = element.string {
                result.append(.text(s))
                continue
            }
            guard let t = element.table else {
                diagnostics.error(
                    elementPath,
                    "expected a string or a { text = \"...\" } / { binary = \"<base64>\" } table, "
                        + "found \(ConfigValueDescription.describe(element, secret: false))"
                )
                continue
            }
            let m = TableReader(table: t, path: elementPath, diagnostics: diagnostics)
            switch (m.contains("text"), m.contains("binary")) {
            case (true, true):
                m.markConsumed("text")
                m.markConsumed("binary")
                diagnostics.error(elementPath, "give either text or binary, not both")
            case (false, false):
                diagnostics.error(elementPath, "expected a table with text = \"...\" or binary = \"<base64>\"")
            case (true, false):
                if let s = m.string("text", allowEmpty: true) { result.append(.text(s)) }
            case (false, true):
                let bytes = m.read("binary", expected: "a base64 string") { v -> ConfigConversion<[UInt8]> in
                    guard let s = v.string else { return .wrongType }
                    guard let data = Data(base64Encoded: s) else {
                        return .invalid("invalid base64 in binary message")
                    }
                    return .ok([UInt8](data))
                }
                if let bytes { result.append(.binary(bytes)) }
            }
            m.finish(allowed: ConfigSchema.subscribeMessage)
        }
        return result
    }
}
