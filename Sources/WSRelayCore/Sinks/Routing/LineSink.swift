/// A sink that takes encoded lines (file, stdout, Unix socket). The router encodes each message at most once
/// per format and hands every line sink of that format the same `EncodedBatch`.
protocol LineSink: AnyObject, Sendable {
    var format: SinkFormat { get }
    /// Upstreams this sink takes.
    var selection: UpstreamSelection { get }
    /// Whether it records connected/disconnected events.
    var wantsEvents: Bool { get }
    /// Called from an upstream's event loop; must not block beyond a short lock.
    func enqueue(_ batch: EncodedBatch)
}

/// A sink that wants the messages themselves rather than lines (the journal: one entry per message).
protocol RelayEventSink: AnyObject, Sendable {
    func enqueue(_ events: [RelayEvent])
}
