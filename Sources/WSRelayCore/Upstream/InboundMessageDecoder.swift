import NIOWebSocket

/// What a connection does with every frame it receives: inflate it when the handshake agreed on
/// permessage-deflate (`MessageInflater`), then apply RFC 6455's rules (`WebSocketMessageAssembler`).
///
/// The daemon's connections and `wsrelay probe` both read frames through this one type, so probe reports
/// exactly what the daemon would deliver.
struct InboundMessageDecoder {
    private var assembler: WebSocketMessageAssembler
    let inflater: MessageInflater?
    private var failed = false

    /// - Parameter compression: the agreed permessage-deflate parameters; nil for an uncompressed connection.
    init(maxMessageSize: Int, compression: PerMessageDeflateParameters?) throws {
        self.assembler = WebSocketMessageAssembler(maxMessageSize: maxMessageSize)
        self.inflater = try compression.map { try MessageInflater(parameters: $0, maxMessageSize: maxMessageSize) }
    }

    mutating func receive(_ frame: WebSocketFrame) -> WebSocketMessageAssembler.Action {
        if failed { return .none }
        guard let inflater else { return assembler.receive(frame) }
        switch inflater.process(frame) {
        case .frame(let plain):
            return assembler.receive(plain)
        case .fail(let code, let reason):
            failed = true
            return .fail(code: code, reason: reason)
        }
    }
}
