import NIOConcurrencyHelpers
import NIOCore

/// Receives every upstream's read bursts and hands them to the sinks that take them.
///
/// For each `deliver` call it encodes each message at most once per format in use (`envelope`, `raw`) into
/// one `ByteBuffer` per format, and gives every line sink of that format the same buffer (sinks that take
/// only some upstreams slice it at line boundaries). Journal sinks get the events themselves. Nothing here
/// blocks or takes a per-message lock: the only locks are one read of the routes and one of the upstream
/// directory per call.
/// Back-pressure takes the other way, through `FlowControlRegistry`.
public final class MessageRouter: RelayEventConsumer, Sendable {
    let directory: UpstreamDirectory
    private let routes: NIOLockedValueBox<Routes>
    private let allocator = ByteBufferAllocator()

    /// The sinks messages go to; replaced as a whole when a reload changes sinks.
    private struct Routes: Sendable {
        var lineSinks: [any LineSink]
        var eventSinks: [any RelayEventSink]
        var hasEnvelopeSinks: Bool
        var hasRawSinks: Bool

        init(lineSinks: [any LineSink], eventSinks: [any RelayEventSink]) {
            self.lineSinks = lineSinks
            self.eventSinks = eventSinks
            hasEnvelopeSinks = lineSinks.contains { $0.format == .envelope }
            hasRawSinks = lineSinks.contains { $0.format == .raw }
        }
    }

    init(directory: UpstreamDirectory, lineSinks: [any LineSink], eventSinks: [any RelayEventSink]) {
        self.directory = directory
        routes = NIOLockedValueBox(Routes(lineSinks: lineSinks, eventSinks: eventSinks))
    }

    /// Reload: from the next `deliver` on, messages go to these sinks. A call to `deliver` already running
    /// finishes with the sinks it started with.
    func setRoutes(lineSinks: [any LineSink], eventSinks: [any RelayEventSink]) {
        let next = Routes(lineSinks: lineSinks, eventSinks: eventSinks)
        routes.withLockedValue { $0 = next }
    }

    public func deliver(_ events: [RelayEvent]) {
        guard !events.isEmpty else { return }
        let routes = self.routes.withLockedValue { $0 }
        let lineSinks = routes.lineSinks, hasEnvelopeSinks = routes.hasEnvelopeSinks, hasRawSinks = routes.hasRawSinks
        for sink in routes.eventSinks { sink.enqueue(events) }
        guard hasEnvelopeSinks || hasRawSinks else { return }

        var payloadBytes = 0
        for event in events {
            if case .message(let m) = event { payloadBytes &+= m.payload.readableBytes }
        }
        var snapshot = directory.snapshot
        var encoder = EnvelopeEncoder()
        let lines = events.count
        var envelope = EncodedBatchBuilder(
            allocator: allocator,
            capacity: hasEnvelopeSinks ? payloadBytes + payloadBytes / 8 + 140 * lines : 0,
            lines: hasEnvelopeSinks ? lines : 0)
        var raw = EncodedBatchBuilder(
            allocator: allocator,
            capacity: hasRawSinks ? payloadBytes + lines : 0,
            lines: hasRawSinks ? lines : 0,
            splitting: true)

        var lastName: String? = nil
        var id: UInt16 = 0
        var needs = Needs()
        for event in events {
            let name = event.upstream
            if name != lastName {
                lastName = name
                if let known = snapshot.id(of: name) {
                    id = known
                } else {
                    (id, snapshot) = directory.id(for: name)
                }
                needs = Needs(id: id, sinks: lineSinks)
            }
            switch event {
            case .message(let message):
                if needs.envelope {
                    encoder.appendEnvelope(message, upstreamPrefix: snapshot.envelopePrefixes[Int(id)], to: &envelope.bytes)
                    envelope.endLine(upstream: id, isEvent: false, seq: message.seq)
                }
                if needs.raw {
                    raw.reserve(lineOfAtMost: EnvelopeEncoder.rawLineSize(message))
                    encoder.appendRaw(message, to: &raw.bytes)
                    raw.endLine(upstream: id, isEvent: false, seq: message.seq)
                }
            case .connected(let upstream, let epoch, let at):
                if needs.envelopeEvents {
                    encoder.appendConnected(upstream: upstream, epoch: epoch, at: at, to: &envelope.bytes)
                    envelope.endLine(upstream: id, isEvent: true, seq: 0)
                }
                if needs.rawEvents {
                    encoder.appendConnected(upstream: upstream, epoch: epoch, at: at, to: &raw.bytes)
                    raw.endLine(upstream: id, isEvent: true, seq: 0)
                }
            case .disconnected(let upstream, let epoch, let code, let reason, let at):
                if needs.envelopeEvents {
                    encoder.appendDisconnected(upstream: upstream, epoch: epoch, code: code, reason: reason, at: at, to: &envelope.bytes)
                    envelope.endLine(upstream: id, isEvent: true, seq: 0)
                }
                if needs.rawEvents {
                    encoder.appendDisconnected(upstream: upstream, epoch: epoch, code: code, reason: reason, at: at, to: &raw.bytes)
                    raw.endLine(upstream: id, isEvent: true, seq: 0)
                }
            }
        }

        for sink in lineSinks {
            switch sink.format {
            case .envelope: envelope.forEachBatch { sink.enqueue($0) }
            case .raw: raw.forEachBatch { sink.enqueue($0) }
            }
        }
    }

    /// Which encodings the current upstream needs, from the sinks that take it.
    private struct Needs {
        var envelope = false
        var raw = false
        var envelopeEvents = false
        var rawEvents = false

        init() {}

        init(id: UInt16, sinks: [any LineSink]) {
            for sink in sinks where sink.selection.contains(id) {
                switch sink.format {
                case .envelope:
                    envelope = true
                    if sink.wantsEvents { envelopeEvents = true }
                case .raw:
                    raw = true
                    if sink.wantsEvents { rawEvents = true }
                }
            }
        }
    }
}
