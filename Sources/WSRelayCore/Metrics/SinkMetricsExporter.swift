import Metrics

/// Sink and subscriber metrics, taken from `SinkStatus` snapshots right before each scrape instead of being
/// counted on the write path: the sinks already keep these numbers (for `wsrelay status`) in their own
/// locks and atomics, so exporting them costs the writer threads and subscriber loops nothing.
///
/// Counters advance by the difference to the previous scrape. A value that went down means the sink was
/// opened anew (a reload replaced it) and counts from zero again: its new value is added, so the exported
/// counter never goes backwards. A sink that is no longer in the snapshot stops being exported.
struct SinkMetricsExporter: Sendable {
    private struct Series: Sendable {
        let bytesWritten: Counter
        let writes: Counter
        let dropped: Counter
        let writeErrors: Counter
        let buffered: Gauge
        let subscribers: Gauge?
        let slowDisconnects: Counter?
        let jetstream: JetStreamSeries?
        var last = SinkStatus(kind: .file, name: "", format: .envelope, upstreams: [])

        init(_ status: SinkStatus, factory: any MetricsFactory) {
            let dimensions = [("sink", status.name), ("type", status.kind.rawValue)]
            func counter(_ family: RelayMetricFamily) -> Counter {
                Counter(label: family.name, dimensions: dimensions, factory: factory)
            }
            bytesWritten = counter(.sinkBytesWritten)
            writes = counter(.sinkWrites)
            dropped = counter(.sinkDropped)
            writeErrors = counter(.sinkWriteErrors)
            buffered = Gauge(label: RelayMetricFamily.sinkBuffered.name, dimensions: dimensions, factory: factory)
            if status.kind == .unix {
                let socket = [("sink", status.name)]
                subscribers = Gauge(label: RelayMetricFamily.subscribers.name, dimensions: socket, factory: factory)
                slowDisconnects = Counter(label: RelayMetricFamily.subscriberSlowDisconnects.name, dimensions: socket,
                                          factory: factory)
            } else {
                subscribers = nil
                slowDisconnects = nil
            }
            jetstream = status.kind == .jetstream ? JetStreamSeries(sink: status.name, factory: factory) : nil
        }

        mutating func update(_ status: SinkStatus) {
            Self.advance(bytesWritten, from: last.bytesWritten, to: status.bytesWritten)
            Self.advance(writes, from: last.writes, to: status.writes)
            Self.advance(dropped, from: last.dropped, to: status.dropped)
            Self.advance(writeErrors, from: last.writeErrors, to: status.writeErrors)
            buffered.record(status.bufferedBytes)
            subscribers?.record(status.subscribers.count)
            if let slowDisconnects { Self.advance(slowDisconnects, from: last.slowDisconnects, to: status.slowDisconnects) }
            if let jetstream, let now = status.jetstream { jetstream.update(now, last: last.jetstream) }
            last = status
        }

        func destroy() {
            for counter in [bytesWritten, writes, dropped, writeErrors] { counter.destroy() }
            buffered.destroy()
            subscribers?.destroy()
            slowDisconnects?.destroy()
            jetstream?.destroy()
        }

        static func advance(_ counter: Counter, from old: UInt64, to new: UInt64) {
            let added = new >= old ? new - old : new
            if added > 0 { counter.increment(by: Int64(clamping: added)) }
        }
    }

    /// The JetStream sink's own series (connection and in-flight window).
    private struct JetStreamSeries: Sendable {
        let connected: Gauge
        let inFlight: Gauge
        let acknowledged: Counter
        let duplicates: Counter
        let retried: Counter

        init(sink: String, factory: any MetricsFactory) {
            let dimensions = [("sink", sink)]
            connected = Gauge(label: RelayMetricFamily.jetstreamConnected.name, dimensions: dimensions, factory: factory)
            inFlight = Gauge(label: RelayMetricFamily.jetstreamInFlight.name, dimensions: dimensions, factory: factory)
            acknowledged = Counter(label: RelayMetricFamily.jetstreamAcknowledged.name, dimensions: dimensions, factory: factory)
            duplicates = Counter(label: RelayMetricFamily.jetstreamDuplicates.name, dimensions: dimensions, factory: factory)
            retried = Counter(label: RelayMetricFamily.jetstreamRetried.name, dimensions: dimensions, factory: factory)
        }

        func update(_ now: SinkStatus.JetStream, last: SinkStatus.JetStream?) {
            connected.record(now.connectedServer == nil ? 0 : 1)
            inFlight.record(now.inFlight)
            Series.advance(acknowledged, from: last?.acknowledged ?? 0, to: now.acknowledged)
            Series.advance(duplicates, from: last?.duplicates ?? 0, to: now.duplicates)
            Series.advance(retried, from: last?.retried ?? 0, to: now.retried)
        }

        func destroy() {
            connected.destroy()
            inFlight.destroy()
            for counter in [acknowledged, duplicates, retried] { counter.destroy() }
        }
    }

    private let factory: any MetricsFactory
    private var series: [String: Series] = [:]

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    mutating func update(_ statuses: [SinkStatus]) {
        var seen: Set<String> = []
        let factory = self.factory
        for status in statuses {
            let key = "\(status.kind.rawValue):\(status.name)"
            guard seen.insert(key).inserted else { continue }
            series[key, default: Series(status, factory: factory)].update(status)
        }
        for key in series.keys.filter({ !seen.contains($0) }) {
            series.removeValue(forKey: key)?.destroy()
        }
    }
}
