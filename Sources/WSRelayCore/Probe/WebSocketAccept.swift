import Crypto

/// RFC 6455 §4.2.2: the `Sec-WebSocket-Accept` a server must answer for a `Sec-WebSocket-Key`.
public enum WebSocketAccept {
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    public static func expected(forKey key: String) -> String {
        let digest = Insecure.SHA1.hash(data: Array((key + guid).utf8))
        return Base64.encode(Array(digest))
    }
}
