import CompressNIO
import NIOCore
import NIOWebSocket

/// Plays one scenario on one upgraded connection.
final class SimulatedConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let scenario: SimulatorScenario
    private let recorder: SimulatorRecorder
    private let id: Int
    private var sentHere = 0
    private var closeSent = false
    private var extrasSent = false
    private var tick: RepeatedTask?
    private var credit = 0.0

    /// True while a `hold` scenario waits for `SimulatorServer.release()`.
    private var held = false
    private let isReleased: () -> Bool
    /// The frame encoder's context: writing a ByteBuffer there puts bytes after the encoder, so the flood can
    /// hand the socket batches of ready-made frames (nil: every message goes through the encoder).
    private var rawFrames: ChannelHandlerContext?
    /// Reused for each message's payload on the batched path.
    private var scratch = ByteBuffer()
    /// permessage-deflate was agreed: every message is compressed with this one context (zlib via compress-nio).
    private let deflater: ZlibCompressor?
    private var compressedScratch = ByteBuffer()

    init(scenario: SimulatorScenario, recorder: SimulatorRecorder, id: Int, compress: Bool = false,
         isReleased: @escaping () -> Bool = { true }) {
        self.scenario = scenario
        self.recorder = recorder
        self.id = id
        self.isReleased = isReleased
        self.deflater = compress ? try? ZlibCompressor(algorithm: .deflate) : nil
    }

    /// RFC 7692 §7.2.1: compress with a sync flush and drop the trailing `00 00 ff ff`.
    private func compress(_ payload: inout ByteBuffer, with deflater: ZlibCompressor, into out: inout ByteBuffer) {
        out.clear()
        out.reserveCapacity(deflater.maxSize(from: payload))
        try? deflater.deflate(from: &payload, to: &out, flush: .sync)
        out.moveWriterIndex(to: out.writerIndex - 4)
    }

    private var closeAfter: Int? {
        scenario.closeCode == nil ? nil : (scenario.closeAfter ?? scenario.count)
    }

    private var target: Int {
        min(scenario.count, closeAfter ?? Int.max)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // A release that happened while this handler was being added is seen here rather than as an event.
        if scenario.hold && !isReleased() {
            held = true
            return
        }
        start(context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is SimulatorRelease {
            if held {
                held = false
                start(context: context)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func start(context: ChannelHandlerContext) {
        // Batched frames are byte-for-byte what the encoder writes; fragmented messages keep the encoder path.
        if scenario.fragments <= 1 {
            rawFrames = try? context.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
        }
        if let rate = scenario.rate, rate > 0 {
            let interval = TimeAmount.milliseconds(Int64(scenario.tickMilliseconds))
            let perTick = rate * Double(scenario.tickMilliseconds) / 1000
            // `spread`: a random phase within the tick and within one message's credit.
            let phase = scenario.spread ? TimeAmount.microseconds(Int64.random(in: 0..<Int64(scenario.tickMilliseconds) * 1000)) : .zero
            if scenario.spread { credit = Double.random(in: 0..<1) }
            let ctx = context
            tick = context.eventLoop.scheduleRepeatedTask(initialDelay: phase, delay: interval) { [self] _ in
                credit = min(credit + perTick, max(perTick * 10, 1))
                pump(context: ctx)
            }
        } else {
            pump(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tick?.cancel()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !held { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    private func pump(context: ChannelHandlerContext) {
        guard !closeSent else { return }
        var wrote = false
        // About 32 KiB of frames per write on the batched path, one message per write otherwise.
        let batchLimit = rawFrames == nil ? 1 : max(1, 32 * 1024 / (scenario.size + 10))
        while sentHere < target && context.channel.isWritable {
            var batch = min(target - sentHere, batchLimit)
            if scenario.rate != nil {
                guard credit >= 1 else { break }
                batch = min(batch, Int(credit))
                credit -= Double(batch)
            }
            let first = scenario.same ? sentHere + 1 : recorder.nextNumbers(batch)
            if let rawFrames {
                writeBatch(first: first, count: batch, to: rawFrames)
            } else {
                send(number: first, context: context)
            }
            sentHere += batch
            wrote = true
        }
        if wrote {
            context.flush()
            let count = sentHere
            recorder.update(id) { $0.messagesSent = count }
        }
        guard sentHere >= target else { return }
        if !extrasSent {
            extrasSent = true
            if scenario.invalidUTF8 {
                let bad = context.channel.allocator.buffer(bytes: [0x7B, 0xC3, 0x28, 0x7D])
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: bad)), promise: nil)
            }
            if let size = scenario.oversize {
                let big = context.channel.allocator.buffer(repeating: UInt8(ascii: "x"), count: size)
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: big)), promise: nil)
            }
        }
        if let code = scenario.closeCode, sentHere >= (closeAfter ?? 0) {
            closeSent = true
            tick?.cancel()
            var buffer = context.channel.allocator.buffer(capacity: 2 + scenario.closeReason.utf8.count)
            buffer.writeInteger(code)
            buffer.writeString(scenario.closeReason)
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer)), promise: nil)
        }
    }

    /// Messages `first ..< first + count` as complete unmasked frames in one buffer, written past the encoder.
    private func writeBatch(first: Int, count: Int, to rawFrames: ChannelHandlerContext) {
        var frames = rawFrames.channel.allocator.buffer(capacity: count * (scenario.size + 10))
        let opcode: WebSocketOpcode = scenario.binary ? .binary : .text
        for number in first..<(first + count) {
            scratch.clear()
            scenario.writePayload(number: number, into: &scratch)
            if let deflater {
                compress(&scratch, with: deflater, into: &compressedScratch)
                frames.writeUnmaskedFrameHeader(opcode: opcode, length: compressedScratch.readableBytes, rsv1: true)
                frames.writeImmutableBuffer(compressedScratch)
            } else {
                frames.writeUnmaskedFrameHeader(opcode: opcode, length: scratch.readableBytes)
                frames.writeImmutableBuffer(scratch)
            }
        }
        rawFrames.write(NIOAny(frames), promise: nil)
    }

    private func send(number: Int, context: ChannelHandlerContext) {
        var payload = context.channel.allocator.buffer(capacity: scenario.size)
        scenario.writePayload(number: number, into: &payload)
        let opcode: WebSocketOpcode = scenario.binary ? .binary : .text
        let compressed = deflater != nil
        if let deflater {
            var out = context.channel.allocator.buffer(capacity: 0)
            compress(&payload, with: deflater, into: &out)
            payload = out
        }
        if scenario.fragments <= 1 || payload.readableBytes < scenario.fragments {
            context.write(wrapOutboundOut(WebSocketFrame(fin: true, rsv1: compressed, opcode: opcode, data: payload)), promise: nil)
            return
        }
        let pieceSize = payload.readableBytes / scenario.fragments
        for index in 0..<scenario.fragments {
            let last = index == scenario.fragments - 1
            let piece = payload.readSlice(length: last ? payload.readableBytes : pieceSize)!
            context.write(wrapOutboundOut(WebSocketFrame(fin: last, rsv1: compressed && index == 0,
                                                         opcode: index == 0 ? opcode : .continuation, data: piece)), promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .ping:
            let payload = Array(frame.unmaskedData.readableBytesView)
            recorder.update(id) {
                $0.pings.append(.now)
                $0.pingPayloads.append(payload)
            }
            if !scenario.ignorePings {
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
            }
        case .pong:
            recorder.update(id) { $0.pongs += 1 }
        case .text:
            let text = String(buffer: frame.unmaskedData)
            recorder.update(id) { $0.textMessages.append(text) }
            if scenario.echo { context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: frame.unmaskedData)), promise: nil) }
        case .binary:
            let bytes = Array(frame.unmaskedData.readableBytesView)
            recorder.update(id) { $0.binaryMessages.append(bytes) }
            if scenario.echo { context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .binary, data: frame.unmaskedData)), promise: nil) }
        case .connectionClose:
            var data = frame.unmaskedData
            let code = data.readInteger(as: UInt16.self)
            recorder.update(id) { $0.closeCodeReceived = code ?? 1005 }
            if scenario.ignoreClose { return }
            if closeSent {
                context.close(promise: nil)
            } else {
                closeSent = true
                tick?.cancel()
                var reply = context.channel.allocator.buffer(capacity: 2)
                reply.writeInteger(code ?? 1000)
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply)))
                    .whenComplete { _ in context.close(promise: nil) }
            }
        default:
            break
        }
    }
}
