/// Lets a sink that cannot keep up (a file sink with `on_full = "block"`) stop the upstreams that feed it,
/// so that TCP holds the rest and nothing is lost. The upstream side implements it; `pause`/`resume` may be
/// called from any thread and are idempotent per caller token.
public protocol UpstreamFlowControl: AnyObject, Sendable {
    /// Stop reading from the socket (NIO `autoRead` off) until every pauser has resumed.
    func pause(by token: ObjectIdentifier)
    func resume(by token: ObjectIdentifier)
}

/// The one narrow interface between upstream connections and the sink layer.
///
/// An upstream connection calls `deliver` from its event loop with the events of one read burst (everything
/// decoded before `channelReadComplete`), so a flood costs one call per burst, not one per message.
/// `deliver` must not block: sinks queue, and use `UpstreamFlowControl` for back-pressure.
public protocol RelayEventConsumer: Sendable {
    func register(upstream: String, flowControl: any UpstreamFlowControl)
    func unregister(upstream: String)
    func deliver(_ events: [RelayEvent])
}
