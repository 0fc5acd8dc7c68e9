import CoreMetrics
import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// The daemon's metrics: one private Prometheus registry and the swift-metrics factory over it, handed to the
/// parts that count (upstream drivers, credentials) as per-name handle objects, plus the Prometheus text
/// exposition the `MetricsService` serves.
///
/// Nothing here touches `MetricsSystem.bootstrap`: each `RelayMetrics` has its own registry, so tests and
/// several daemons in one process never share series. `RelayMetrics.disabled` (metrics off) hands out
/// handles backed by `NOOPMetricsHandler`, so instrumented code needs no branches.
public final class RelayMetrics: Sendable {
    public let isEnabled: Bool
    private let registry: PrometheusCollectorRegistry
    let factory: any MetricsFactory
    private let upstreams = NIOLockedValueBox<[String: UpstreamMetrics]>([:])
    private let credentials = NIOLockedValueBox<[String: CredentialMetrics]>([:])
    /// Also serializes scrapes, so two concurrent ones cannot interleave their snapshot updates.
    private let sinks: NIOLockedValueBox<SinkMetricsExporter>
    private let buildInfo: CoreMetrics.Gauge
    /// Set once: Prometheus sees it change only when the process restarts (the restart-loop alert).
    private let startTime: CoreMetrics.Gauge

    /// Metrics off: every handle records nothing and the exposition is empty.
    public static let disabled = RelayMetrics(enabled: false)

    /// Enabled when `[metrics] listen` is set.
    public convenience init(_ settings: MetricsSettings) {
        self.init(enabled: settings.listen != nil)
    }

    public init(enabled: Bool, startedAt: WallClockTime = .now()) {
        isEnabled = enabled
        registry = PrometheusCollectorRegistry()
        let factory: any MetricsFactory = enabled ? PrometheusRelayMetricsFactory(registry: registry) : NOOPMetricsHandler.instance
        self.factory = factory
        sinks = NIOLockedValueBox(SinkMetricsExporter(factory: factory))
        buildInfo = CoreMetrics.Gauge(label: RelayMetricFamily.buildInfo.name, dimensions: [("version", WSRelayVersion.string)],
                          factory: factory)
        buildInfo.record(1)
        startTime = CoreMetrics.Gauge(label: RelayMetricFamily.startTime.name, factory: factory)
        startTime.record(Double(startedAt.microsecondsSinceEpoch) / 1_000_000)
    }

    /// The handles of upstream `name`, made on first use and the same object afterwards: drivers created
    /// later by a reload get them here too. `traffic` is what its message and byte series show.
    public func upstream(named name: String, traffic: UpstreamTrafficCounters = UpstreamTrafficCounters()) -> UpstreamMetrics {
        guard isEnabled else { return .disabled }
        return upstreams.withLockedValue { all in
            if let existing = all[name] { return existing }
            let made = UpstreamMetrics(upstream: name, factory: factory, traffic: traffic)
            all[name] = made
            return made
        }
    }

    /// Stops exporting upstream `name` (removed by a reload). A driver still holding its handles may go on
    /// counting into them; nothing is exported from them any more.
    public func removeUpstream(named name: String) {
        upstreams.withLockedValue { $0.removeValue(forKey: name) }?.destroy()
    }

    /// The refresh counters of credential `name`, made on first use.
    public func credential(named name: String) -> CredentialMetrics {
        guard isEnabled else { return .disabled }
        return credentials.withLockedValue { all in
            if let existing = all[name] { return existing }
            let made = CredentialMetrics(credential: name, factory: factory)
            all[name] = made
            return made
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of everything counted so far, with the upstreams' traffic
    /// and the sink and subscriber series brought up to date first.
    public func exposition(sinks statuses: [SinkStatus] = []) -> [UInt8] {
        guard isEnabled else { return [] }
        return sinks.withLockedValue { exporter in
            for upstream in upstreams.withLockedValue({ Array($0.values) }) { upstream.exportTraffic() }
            exporter.update(statuses)
            return registry.emitToBuffer()
        }
    }

    /// `exposition(sinks:)` as text (tests, debugging).
    public func expositionText(sinks statuses: [SinkStatus] = []) -> String {
        String(decoding: exposition(sinks: statuses), as: UTF8.self)
    }
}
