/// The permessage-deflate offer a client sends (RFC 7692 §7.1).
///
/// wsrelay's own sends stay uncompressed, so the parameters that limit the *client's* compressor
/// (`client_max_window_bits`, `client_no_context_takeover`) cost us nothing: the default offer says we accept
/// any limit the server wants (`client_max_window_bits` without a value) and asks nothing of the server.
public struct PerMessageDeflateOffer: Sendable, Equatable {
    public enum ClientWindow: Sendable, Equatable {
        /// Not mentioned: the server must not send `client_max_window_bits`.
        case notOffered
        /// `client_max_window_bits` without a value: the server may limit our window to any size.
        case supported
        /// `client_max_window_bits=N`: we will use at most N bits; the server may ask for fewer.
        case limit(Int)
    }

    public var clientMaxWindowBits: ClientWindow
    /// Asks the server to compress with at most this many window bits (less memory for our inflater).
    public var serverMaxWindowBits: Int?
    public var clientNoContextTakeover: Bool
    /// Asks the server to start every message with an empty window.
    public var serverNoContextTakeover: Bool

    public init(clientMaxWindowBits: ClientWindow = .supported, serverMaxWindowBits: Int? = nil,
                clientNoContextTakeover: Bool = false, serverNoContextTakeover: Bool = false) {
        self.clientMaxWindowBits = clientMaxWindowBits
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverNoContextTakeover = serverNoContextTakeover
    }

    /// The `Sec-WebSocket-Extensions` value.
    public var headerValue: String {
        var parts = ["permessage-deflate"]
        if clientNoContextTakeover { parts.append("client_no_context_takeover") }
        if serverNoContextTakeover { parts.append("server_no_context_takeover") }
        switch clientMaxWindowBits {
        case .notOffered: break
        case .supported: parts.append("client_max_window_bits")
        case .limit(let bits): parts.append("client_max_window_bits=\(bits)")
        }
        if let bits = serverMaxWindowBits { parts.append("server_max_window_bits=\(bits)") }
        return parts.joined(separator: "; ")
    }
}

/// What both sides agreed on for a compressed connection.
public struct PerMessageDeflateParameters: Sendable, Equatable, CustomStringConvertible {
    /// The server compresses with at most this window (nil: 15, the default).
    public var serverMaxWindowBits: Int?
    /// We must compress with at most this window (nil: 15). Unused while our sends stay uncompressed.
    public var clientMaxWindowBits: Int?
    /// The server resets its compression context after every message: so may our inflater.
    public var serverNoContextTakeover: Bool
    public var clientNoContextTakeover: Bool

    public init(serverMaxWindowBits: Int? = nil, clientMaxWindowBits: Int? = nil,
                serverNoContextTakeover: Bool = false, clientNoContextTakeover: Bool = false) {
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
    }

    /// The window our inflater needs. zlib's raw deflate never uses 8 bits (it silently compresses with 9
    /// when asked for 8), so a server that agreed to 8 and uses zlib may refer 512 bytes back: 9 is the
    /// smallest window that inflates every conforming stream.
    public var inflateWindowBits: Int { max(9, serverMaxWindowBits ?? 15) }

    /// As an extension header value, which is also how status and probe show it.
    public var description: String {
        var parts = ["permessage-deflate"]
        if serverNoContextTakeover { parts.append("server_no_context_takeover") }
        if clientNoContextTakeover { parts.append("client_no_context_takeover") }
        if let bits = serverMaxWindowBits { parts.append("server_max_window_bits=\(bits)") }
        if let bits = clientMaxWindowBits { parts.append("client_max_window_bits=\(bits)") }
        return parts.joined(separator: "; ")
    }
}

/// Why a handshake's extension answer cannot be used; the connection fails with `closeCode`.
public struct DeflateNegotiationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1010 when `compression = "require"` and the server declined; 1002 when the answer breaks RFC 6455
    /// §9.1 or RFC 7692 §7.
    public var closeCode: UInt16
    public var message: String
    public var description: String { message }
}

/// permessage-deflate negotiation for one connection attempt: the offer that goes into the upgrade request
/// and the judgement of the server's `Sec-WebSocket-Extensions` answer (RFC 7692 §5 and §7.1). A pure value:
/// offer → answer → agreed parameters (nil: uncompressed) or the error the connection fails with.
public struct DeflateNegotiation: Sendable, Equatable {
    public var mode: CompressionMode
    public var offer: PerMessageDeflateOffer

    public init(mode: CompressionMode, offer: PerMessageDeflateOffer = .init()) {
        self.mode = mode
        self.offer = offer
    }

    static let extensionName = "permessage-deflate"

    /// The `Sec-WebSocket-Extensions` request header value, or nil when nothing is offered.
    public var requestHeaderValue: String? { mode == .off ? nil : offer.headerValue }

    /// Judges the server's answer: every `Sec-WebSocket-Extensions` value of the 101 response, in order.
    public func judge(_ responseValues: [String]) -> Result<PerMessageDeflateParameters?, DeflateNegotiationError> {
        func invalid(_ message: String) -> Result<PerMessageDeflateParameters?, DeflateNegotiationError> {
            .failure(DeflateNegotiationError(closeCode: CloseCode.protocolError, message: message))
        }
        let header: WebSocketExtensionHeader
        switch WebSocketExtensionHeader.parse(responseValues) {
        case .success(let parsed): header = parsed
        case .failure(let error): return invalid("malformed Sec-WebSocket-Extensions in the server's answer: \(error)")
        }
        var accepted: WebSocketExtensionHeader.Element?
        for element in header.elements {
            guard element.name.lowercased() == Self.extensionName, mode != .off else {
                let why = mode == .off && element.name.lowercased() == Self.extensionName ? " (compression = \"off\")" : ""
                return invalid("the server enabled extension \"\(element.name)\", which was not offered\(why)")
            }
            guard accepted == nil else { return invalid("the server accepted permessage-deflate twice") }
            accepted = element
        }
        guard let accepted else {
            if mode == .require {
                return .failure(DeflateNegotiationError(
                    closeCode: CloseCode.mandatoryExtension,
                    message: "the server declined permessage-deflate, which this upstream requires (compression = \"require\")"))
            }
            return .success(nil)
        }
        return parameters(from: accepted).mapError { DeflateNegotiationError(closeCode: CloseCode.protocolError, message: $0.message) }
    }

    private struct Invalid: Error { var message: String }

    private func parameters(from element: WebSocketExtensionHeader.Element) -> Result<PerMessageDeflateParameters?, Invalid> {
        var agreed = PerMessageDeflateParameters()
        var seen = Set<String>()
        for (rawName, value) in element.parameters {
            let name = rawName.lowercased()
            guard seen.insert(name).inserted else {
                return .failure(Invalid(message: "permessage-deflate answer repeats parameter \(name)"))
            }
            switch name {
            case "server_no_context_takeover", "client_no_context_takeover":
                if let value { return .failure(Invalid(message: "permessage-deflate parameter \(name) takes no value, got \"\(value)\"")) }
                if name == "server_no_context_takeover" { agreed.serverNoContextTakeover = true } else { agreed.clientNoContextTakeover = true }
            case "server_max_window_bits":
                guard let bits = Self.windowBits(value) else {
                    return .failure(Invalid(message: "permessage-deflate server_max_window_bits must be 8 to 15, got \(Self.show(value))"))
                }
                if let limit = offer.serverMaxWindowBits, bits > limit {
                    return .failure(Invalid(message: "permessage-deflate server_max_window_bits=\(bits) exceeds the \(limit) that was offered"))
                }
                agreed.serverMaxWindowBits = bits
            case "client_max_window_bits":
                if offer.clientMaxWindowBits == .notOffered {
                    return .failure(Invalid(message: "permessage-deflate answer has client_max_window_bits, which was not offered"))
                }
                guard let bits = Self.windowBits(value) else {
                    return .failure(Invalid(message: "permessage-deflate client_max_window_bits must be 8 to 15, got \(Self.show(value))"))
                }
                if case .limit(let limit) = offer.clientMaxWindowBits, bits > limit {
                    return .failure(Invalid(message: "permessage-deflate client_max_window_bits=\(bits) exceeds the \(limit) that was offered"))
                }
                agreed.clientMaxWindowBits = bits
            default:
                return .failure(Invalid(message: "permessage-deflate answer has unknown parameter \(rawName)"))
            }
        }
        if offer.serverNoContextTakeover && !agreed.serverNoContextTakeover {
            return .failure(Invalid(message: "the server accepted permessage-deflate without the server_no_context_takeover that was offered"))
        }
        if let limit = offer.serverMaxWindowBits, agreed.serverMaxWindowBits == nil {
            return .failure(Invalid(message: "the server accepted permessage-deflate without the server_max_window_bits=\(limit) that was offered"))
        }
        return .success(agreed)
    }

    /// RFC 7692 §7.1.2: a decimal integer 8...15 without leading zeros.
    static func windowBits(_ value: String?) -> Int? {
        guard let value, !value.hasPrefix("0"), value.count <= 2, value.allSatisfy({ ("0"..."9").contains($0) }),
              let bits = Int(value), (8...15).contains(bits) else { return nil }
        return bits
    }

    private static func show(_ value: String?) -> String {
        value.map { "\"\($0)\"" } ?? "no value"
    }
}
