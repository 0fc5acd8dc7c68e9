/// The back-pressure half of the interface between upstreams and sinks: lets a sink that cannot keep up (a
/// file or JetStream sink with `on_full = "block"`) stop the upstreams that feed it, so that TCP holds the
/// rest and nothing is lost. The upstream side implements it; `pause`/`resume` may be called from any
/// thread and are idempotent per caller token.
public protocol UpstreamFlowControl: AnyObject, Sendable {
    /// Stop reading from the socket (NIO `autoRead` off) until every pauser has resumed.
    func pause(by token: ObjectIdentifier)
    func resume(by token: ObjectIdentifier)
}

/// Where an upstream offers its `UpstreamFlowControl` while it runs (the sink layer's `FlowControlRegistry`).
/// Kept apart from `RelayEventConsumer`: data flows one way, pauses the other, and neither needs the other.
public protocol UpstreamFlowControls: Sendable {
    /// From now until `unregister`, sinks that take `upstream` may pause it (at once, if one is full now).
    func register(upstream: String, flowControl: any UpstreamFlowControl)
    /// Releases every pause held on `flowControl` and forgets it; a later registration of the same name by
    /// another object (a reload's new driver) stays.
    func unregister(upstream: String, flowControl: any UpstreamFlowControl)
}
