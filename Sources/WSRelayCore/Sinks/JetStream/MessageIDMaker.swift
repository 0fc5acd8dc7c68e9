import Crypto
import NIOCore

/// The `Nats-Msg-Id` of each published message, per `dedupe` (see `JetStreamDedupe`).
///
/// `none` includes a random id of this process run besides (upstream, epoch, seq): `seq` starts again at 1
/// when wsrelay restarts, and without the run id a restart within the duplicate window would have its first
/// messages taken for duplicates of the previous run's and silently not stored.
struct MessageIDMaker: Sendable {
    let dedupe: JetStreamDedupe
    let runID: String
    private let pointer: JSONPointer?

    init(dedupe: JetStreamDedupe, runID: String = MessageIDMaker.randomRunID()) {
        self.dedupe = dedupe
        self.runID = runID
        if case .jsonPointer(let text) = dedupe { pointer = JSONPointer(text) } else { pointer = nil }
    }

    /// The id, and whether a `json_pointer` did not resolve so the payload hash was used instead.
    func id(for message: ReceivedMessage) -> (id: String, usedFallback: Bool) {
        switch dedupe {
        case .none:
            return ("\(message.upstream):\(runID):\(message.epoch):\(message.seq)", false)
        case .payload:
            return (payloadID(message), false)
        case .jsonPointer:
            let bytes = message.payload.readableBytesView
            if message.kind == .text, let value = pointer?.value(in: Array(bytes)) {
                // Long values (a nested object) are hashed so the header stays small.
                if value.utf8.count <= 128 { return ("\(message.upstream):\(value)", false) }
                return ("\(message.upstream):h:\(Self.hash(message.upstream, Array(value.utf8)))", false)
            }
            return (payloadID(message), true)
        }
    }

    /// Gap and connection records are this relay's own: unique per run.
    func recordID(_ kind: String, upstream: String, number: UInt64) -> String {
        "\(upstream):\(runID):\(kind):\(number)"
    }

    private func payloadID(_ message: ReceivedMessage) -> String {
        "\(message.upstream):p:\(Self.hash(message.upstream, message.payload.readableBytesView))"
    }

    /// SHA-256 of the upstream name, a NUL and the bytes, the first 128 bits in hex.
    static func hash<C: Collection<UInt8>>(_ upstream: String, _ bytes: C) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(upstream.utf8) + [0])
        hasher.update(data: Array(bytes))
        let digest = hasher.finalize()
        var out = ""
        out.reserveCapacity(32)
        for byte in digest.prefix(16) {
            out.append(Self.hexDigits[Int(byte >> 4)])
            out.append(Self.hexDigits[Int(byte & 0x0F)])
        }
        return out
    }

    private static let hexDigits = Array("0123456789abcdef")

    static func randomRunID() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt64
        return String(value, radix: 36)
    }
}
