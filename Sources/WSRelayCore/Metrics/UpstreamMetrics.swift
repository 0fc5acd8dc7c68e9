import Metrics
import NIOConcurrencyHelpers

/// The metric handles of one upstream, made once (by `RelayMetrics.upstream(named:traffic:)`) and kept by its
/// `UpstreamDriver`. Messages and bytes are not counted here: each scrape brings their counters up to the
/// upstream's `UpstreamTrafficCounters` (`exportTraffic()`), so the hot path touches no metric at all.
/// Disconnect causes are open-ended, so their counters are made on first use (a disconnect is rare).
///
/// Several drivers may share one instance: a reload that replaces an upstream's driver hands the new one the
/// same handles, so the series continue. `up` is therefore moved by increments, one per open driver.
public final class UpstreamMetrics: Sendable {
    public let upstream: String
    let isEnabled: Bool
    private let factory: any MetricsFactory
    private let connects: Counter
    private let messages: Counter
    private let bytes: Counter
    private let up: Meter
    private let pingRTT: Metrics.Timer
    private let disconnects = NIOLockedValueBox<[String: Counter]>([:])
    /// What the series show: this upstream's traffic, and how much of it was exported by the last scrape.
    let traffic: UpstreamTrafficCounters
    private let exported = NIOLockedValueBox<(messages: UInt64, bytes: UInt64)>((0, 0))

    /// Handles that record nothing (metrics off).
    public static let disabled = UpstreamMetrics(upstream: "", factory: NOOPMetricsHandler.instance, enabled: false)

    init(upstream: String, factory: any MetricsFactory, traffic: UpstreamTrafficCounters = UpstreamTrafficCounters(),
         enabled: Bool = true) {
        self.upstream = upstream
        self.traffic = traffic
        self.factory = factory
        self.isEnabled = enabled
        let dimensions = [("upstream", upstream)]
        connects = Counter(label: RelayMetricFamily.upstreamConnects.name, dimensions: dimensions, factory: factory)
        messages = Counter(label: RelayMetricFamily.upstreamMessages.name, dimensions: dimensions, factory: factory)
        bytes = Counter(label: RelayMetricFamily.upstreamBytes.name, dimensions: dimensions, factory: factory)
        up = Meter(label: RelayMetricFamily.upstreamUp.name, dimensions: dimensions, factory: factory)
        pingRTT = Metrics.Timer(label: RelayMetricFamily.upstreamPingRTT.name, dimensions: dimensions, factory: factory)
        up.set(0)
    }

    /// Brings the message and byte counters up to the traffic counters (called at each scrape).
    func exportTraffic() {
        guard isEnabled else { return }
        let now = (messages: traffic.messages, bytes: traffic.bytes)
        let last = exported.withLockedValue { last in defer { last = now }; return last }
        if now.messages > last.messages { messages.increment(by: Int64(clamping: now.messages - last.messages)) }
        if now.bytes > last.bytes { bytes.increment(by: Int64(clamping: now.bytes - last.bytes)) }
    }

    func recordPingRTT(_ rtt: Duration) {
        pingRTT.record(duration: rtt)
    }

    /// Counts what changed between two status snapshots a driver published one after the other.
    ///
    /// Connects and disconnects by cause are counted by the supervisor already (the numbers `wsrelay status`
    /// shows), so each publish adds only what grew, and a change into or out of `open` moves `up`. Works on
    /// differences, so a driver that continues an earlier one's counters (reload) repeats none of them.
    func observe(from old: UpstreamState, to new: UpstreamState) {
        guard isEnabled else { return }
        if new.connects > old.connects { connects.increment(by: new.connects - old.connects) }
        if new.disconnects != old.disconnects {
            for (cause, count) in new.disconnects {
                let added = count - old.disconnects[cause, default: 0]
                if added > 0 { disconnected(cause: cause, added) }
            }
        }
        let wasOpen = old.phase == .open
        let isOpen = new.phase == .open
        if wasOpen != isOpen {
            if isOpen { up.increment() } else { up.decrement() }
        }
    }

    private func disconnected(cause: String, _ count: Int) {
        let counter = disconnects.withLockedValue { counters -> Counter in
            if let existing = counters[cause] { return existing }
            let made = Counter(
                label: RelayMetricFamily.upstreamDisconnects.name, dimensions: [("upstream", upstream), ("cause", cause)],
                factory: factory)
            counters[cause] = made
            return made
        }
        counter.increment(by: count)
    }

    /// Stops exporting this upstream's series (it was removed from the configuration).
    func destroy() {
        guard isEnabled else { return }
        connects.destroy()
        messages.destroy()
        bytes.destroy()
        up.destroy()
        pingRTT.destroy()
        for counter in disconnects.withLockedValue({ $0.values }) { counter.destroy() }
    }
}
