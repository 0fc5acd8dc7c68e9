import CompressNIO
import NIOCore
import NIOWebSocket

/// Bytes in and out of a connection's inflater, for status (`compression_ratio`).
public struct CompressionStats: Sendable, Equatable {
    /// Compressed messages received.
    public var messages: UInt64 = 0
    /// Their payload bytes as they came over the wire.
    public var compressedBytes: UInt64 = 0
    /// The same messages inflated.
    public var inflatedBytes: UInt64 = 0

    public init() {}

    /// Inflated bytes per wire byte (nil before the first compressed message).
    public var ratio: Double? {
        compressedBytes == 0 ? nil : Double(inflatedBytes) / Double(compressedBytes)
    }
}

/// The per-message inflate state of one permessage-deflate connection (RFC 7692 §6.2, §7.2.2).
///
/// Sits in front of `WebSocketMessageAssembler`: a message whose first frame has RSV1 set is inflated frame
/// by frame (with the `00 00 ff ff` tail the sender removed put back after the last one) and handed on as
/// plain frames, so the assembler's rules — fragmentation, UTF-8, the size limit — apply to what the message
/// really is. `max_message_size` is enforced while inflating: each frame may produce at most what is left of
/// the message's budget (plus one byte to notice the overrun), so a small frame that inflates to gigabytes
/// stops at the limit with 1009 and never holds more than about the limit in memory.
///
/// zlib itself comes from compress-nio (`ZlibDecompressor`, raw deflate). A class because the zlib stream
/// is a C object with an identity; confined to the connection's event loop like the channel handler that
/// owns it.
final class MessageInflater {
    enum Outcome {
        /// Hand this (now uncompressed) frame to the assembler.
        case frame(WebSocketFrame)
        case fail(code: UInt16, reason: String)
    }

    let parameters: PerMessageDeflateParameters
    let maxMessageSize: Int
    private let decompressor: ZlibDecompressor
    private let allocator = ByteBufferAllocator()
    /// A data message has started and its last frame has not come yet.
    private var inMessage = false
    /// The current message is compressed (RSV1 on its first frame).
    private var compressed = false
    private var inflatedInMessage = 0
    private(set) var stats = CompressionStats()

    /// What the sender removed from the end of every compressed message (RFC 7692 §7.2.1).
    private static let tail: [UInt8] = [0x00, 0x00, 0xff, 0xff]

    init(parameters: PerMessageDeflateParameters, maxMessageSize: Int) throws {
        self.parameters = parameters
        self.maxMessageSize = maxMessageSize
        self.decompressor = try ZlibDecompressor(algorithm: .deflate, windowSize: Int32(parameters.inflateWindowBits))
    }

    func process(_ frame: WebSocketFrame) -> Outcome {
        switch frame.opcode {
        case .text, .binary:
            // A new message (were one still open, the assembler rejects this frame).
            compressed = frame.rsv1
            inflatedInMessage = 0
            inMessage = !frame.fin
        case .continuation:
            if frame.rsv1 { return .fail(code: CloseCode.protocolError, reason: "RSV1 set on a continuation frame") }
            guard inMessage else { return .frame(frame) }  // the assembler rejects it
            inMessage = !frame.fin
        default:
            if frame.rsv1 && frame.opcode.isControlOpcode {
                return .fail(code: CloseCode.protocolError, reason: "RSV1 set on a control frame")
            }
            return .frame(frame)
        }
        // Uncompressed messages pass untouched; so do masked frames, which the assembler rejects.
        guard compressed, frame.maskKey == nil else { return .frame(frame) }

        var input = frame.data
        stats.compressedBytes &+= UInt64(input.readableBytes)
        if frame.fin { input.writeBytes(Self.tail) }
        let budget = maxMessageSize - inflatedInMessage
        let output: ByteBuffer
        switch inflate(&input, budget: budget, endsWithTail: frame.fin) {
        case .success(let inflated):
            output = inflated
        case .failure(.tooBig):
            return .fail(code: CloseCode.messageTooBig,
                         reason: "compressed message inflates past max_message_size \(maxMessageSize)")
        case .failure(.corrupt(let why)):
            return .fail(code: CloseCode.invalidPayload, reason: "invalid compressed data: \(why)")
        }
        inflatedInMessage += output.readableBytes
        stats.inflatedBytes &+= UInt64(output.readableBytes)
        if frame.fin {
            stats.messages &+= 1
            if parameters.serverNoContextTakeover {
                // The server starts every message with an empty window; so can we (RFC 7692 §7.1.1.1).
                do { try decompressor.reset() } catch {
                    return .fail(code: CloseCode.internalError, reason: "zlib reset failed: \(error)")
                }
            }
        }
        var plain = frame
        plain.rsv1 = false
        plain.data = output
        return .frame(plain)
    }

    private enum InflateError: Error {
        case tooBig
        case corrupt(String)
    }

    /// Inflates all of `input` into a buffer that grows up to `budget + 1` bytes. `endsWithTail`: the input
    /// ends with the `00 00 ff ff` we appended.
    private func inflate(_ input: inout ByteBuffer, budget: Int, endsWithTail: Bool) -> Result<ByteBuffer, InflateError> {
        guard budget >= 0 else { return .failure(.tooBig) }
        let limit = budget + 1
        var output = allocator.buffer(capacity: min(limit, max(4096, input.readableBytes * 4)))
        // Every round consumes input or fills the output, which is bounded by `limit`; a stream restart
        // that consumes nothing twice in a row fails, so the loop cannot spin.
        var restartedWithoutProgress = false
        // zlib may still hold output after it consumed the last input byte (a long match into a full
        // buffer): keep going while the last round ended on a full buffer.
        var outputFull = false
        while input.readableBytes > 0 || outputFull {
            if output.writableBytes == 0 {
                let room = limit - output.readableBytes
                guard room > 0 else { return .failure(.tooBig) }
                output.reserveCapacity(minimumWritableBytes: min(room, max(4096, output.readableBytes)))
            }
            let before = (input.readableBytes, output.readableBytes)
            outputFull = false
            do {
                try decompressor.inflate(from: &input, to: &output)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                outputFull = true  // the next round grows the buffer, or stops at the limit
            } catch let error as CompressNIOError where error == .inputBufferOverflow {
                break  // all input consumed and nothing pending
            } catch let error as CompressNIOError where error == .corruptData {
                return .failure(.corrupt("not a valid DEFLATE stream"))
            } catch {
                return .failure(.corrupt("zlib: \(error)"))
            }
            if output.readableBytes > budget { return .failure(.tooBig) }
            if !outputFull && input.readableBytes > 0 {
                // zlib stopped with input and room left: the sender ended the DEFLATE stream (a block with
                // BFINAL set, RFC 7692 §7.2.3.3), and its next message starts a new one. Of our appended tail,
                // what zlib did not read is not DEFLATE data; anything else starts the new stream at once.
                do { try decompressor.reset() } catch { return .failure(.corrupt("zlib reset failed: \(error)")) }
                if endsWithTail && input.readableBytes <= Self.tail.count
                    && input.readableBytesView.elementsEqual(Self.tail.suffix(input.readableBytes)) {
                    input.moveReaderIndex(forwardBy: input.readableBytes)
                    break
                }
                let progressed = (input.readableBytes, output.readableBytes) != before
                if !progressed && restartedWithoutProgress {
                    return .failure(.corrupt("data after the end of the DEFLATE stream"))
                }
                restartedWithoutProgress = !progressed
            }
        }
        return .success(output)
    }
}
