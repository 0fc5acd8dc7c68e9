/// The data half of the interface between upstream connections and the sink layer.
///
/// An upstream connection calls `deliver` from its event loop with the events of one read burst (everything
/// decoded before `channelReadComplete`), so a flood costs one call per burst, not one per message.
/// `deliver` must not block: sinks queue, and use `UpstreamFlowControls` for back-pressure.
public protocol RelayEventConsumer: Sendable {
    func deliver(_ events: [RelayEvent])
}
