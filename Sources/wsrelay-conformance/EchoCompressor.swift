import CompressNIO
import NIOCore
import WSRelayCore

/// Compresses the echo client's messages for a permessage-deflate connection (RFC 7692 §7.2.1): raw DEFLATE
/// through zlib (compress-nio) with the agreed `client_max_window_bits`, a sync flush, the trailing
/// `00 00 ff ff` removed, and a fresh context for every message (the offer said `client_no_context_takeover`).
/// zlib's fastest level: the echoes only have to be valid, and sections 12-13 echo about 10 GB.
///
/// Only the conformance client compresses: wsrelay's own sends stay uncompressed. A failure returns nil and
/// the message goes out uncompressed, which the protocol allows.
final class EchoCompressor {
    private let zlib: ZlibCompressor

    /// nil when the agreed window is 8 bits: zlib cannot compress raw DEFLATE with a 256-byte window, and
    /// uncompressed messages are always allowed.
    init?(_ parameters: PerMessageDeflateParameters) {
        let bits = parameters.clientMaxWindowBits ?? 15
        guard bits >= 9, let zlib = try? ZlibCompressor(algorithm: .deflate, configuration: .init(windowSize: Int32(bits), compressionLevel: 1, memoryLevel: 8)) else {
            return nil
        }
        self.zlib = zlib
    }

    func compress(_ payload: ByteBuffer) -> ByteBuffer? {
        guard payload.readableBytes > 0 else { return nil }  // an empty message goes out as it is
        var input = payload
        var output = ByteBuffer()
        output.reserveCapacity(zlib.maxSize(from: input))
        do {
            try zlib.deflate(from: &input, to: &output, flush: .sync)
            try zlib.reset()
        } catch {
            return nil
        }
        guard output.readableBytes >= 4 else { return nil }
        output.moveWriterIndex(to: output.writerIndex - 4)
        return output
    }
}
