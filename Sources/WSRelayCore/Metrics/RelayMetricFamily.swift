/// Every metric family wsrelay exports: its Prometheus name, type, help text and label names. The one list
/// the README's "Metrics" section and the endpoint agree on; the factory takes help texts and histogram
/// buckets from here.
public enum RelayMetricFamily: String, CaseIterable, Sendable {
    case buildInfo = "wsrelay_build_info"
    case startTime = "wsrelay_start_time_seconds"

    case upstreamConnects = "wsrelay_upstream_connects_total"
    case upstreamDisconnects = "wsrelay_upstream_disconnects_total"
    case upstreamMessages = "wsrelay_upstream_messages_received_total"
    case upstreamBytes = "wsrelay_upstream_bytes_received_total"
    case upstreamUp = "wsrelay_upstream_up"
    case upstreamPingRTT = "wsrelay_upstream_ping_rtt_seconds"

    case credentialRefreshes = "wsrelay_credential_refreshes_total"

    case sinkBytesWritten = "wsrelay_sink_bytes_written_total"
    case sinkWrites = "wsrelay_sink_writes_total"
    case sinkDropped = "wsrelay_sink_dropped_messages_total"
    case sinkWriteErrors = "wsrelay_sink_write_errors_total"
    case sinkBuffered = "wsrelay_sink_buffered_bytes"

    case subscribers = "wsrelay_subscribers"
    case subscriberSlowDisconnects = "wsrelay_subscriber_slow_disconnects_total"

    case jetstreamConnected = "wsrelay_jetstream_connected"
    case jetstreamInFlight = "wsrelay_jetstream_in_flight_messages"
    case jetstreamAcknowledged = "wsrelay_jetstream_acknowledged_total"
    case jetstreamDuplicates = "wsrelay_jetstream_duplicates_total"
    case jetstreamRetried = "wsrelay_jetstream_retried_total"

    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    public var name: String { rawValue }

    public var kind: Kind {
        switch self {
        case .buildInfo, .startTime, .upstreamUp, .sinkBuffered, .subscribers, .jetstreamConnected, .jetstreamInFlight:
            return .gauge
        case .upstreamPingRTT: return .histogram
        default: return .counter
        }
    }

    public var labels: [String] {
        switch self {
        case .buildInfo: return ["version"]
        case .startTime: return []
        case .upstreamConnects, .upstreamMessages, .upstreamBytes, .upstreamUp, .upstreamPingRTT: return ["upstream"]
        case .upstreamDisconnects: return ["upstream", "cause"]
        case .credentialRefreshes: return ["credential", "outcome"]
        case .sinkBytesWritten, .sinkWrites, .sinkDropped, .sinkWriteErrors, .sinkBuffered: return ["sink", "type"]
        case .subscribers, .subscriberSlowDisconnects: return ["sink"]
        case .jetstreamConnected, .jetstreamInFlight, .jetstreamAcknowledged, .jetstreamDuplicates, .jetstreamRetried:
            return ["sink"]
        }
    }

    public var help: String {
        switch self {
        case .buildInfo:
            return "Always 1; the version label names the running wsrelay."
        case .startTime:
            return "When this wsrelay process started, in seconds since 1970; a value that keeps changing is a restart loop."
        case .upstreamConnects:
            return "Connections to the upstream that completed the WebSocket upgrade."
        case .upstreamDisconnects:
            return "Ended connections and failed attempts by cause: a close code (1006: lost without a close frame), "
                + "pong timeout, idle timeout, connect error, http STATUS, credentials, token rotation, pause, reconnect, "
                + "shutdown, removed."
        case .upstreamMessages:
            return "Messages received from the upstream."
        case .upstreamBytes:
            return "Payload bytes of the messages received from the upstream."
        case .upstreamUp:
            return "1 while the upstream connection is open, else 0."
        case .upstreamPingRTT:
            return "Round-trip time of keepalive pings, from ping sent to pong received."
        case .credentialRefreshes:
            return "Token refreshes by outcome: success, failure (transient, retried with backoff), rejected "
                + "(grant refused by the token endpoint)."
        case .sinkBytesWritten:
            return "Bytes the sink wrote (files, stdout, journal entries, or all subscribers of a socket together)."
        case .sinkWrites:
            return "Successful write operations of the sink (write calls, journal entries, subscriber flushes)."
        case .sinkDropped:
            return "Messages the sink dropped because its buffer was full (socket sinks: dropped for subscribers)."
        case .sinkWriteErrors:
            return "Failed writes of the sink (each retry counts)."
        case .sinkBuffered:
            return "Bytes queued in the sink, not yet written."
        case .subscribers:
            return "Subscribers connected to the socket sink."
        case .subscriberSlowDisconnects:
            return "Subscribers disconnected because they did not keep up."
        case .jetstreamConnected:
            return "1 while the JetStream sink is connected to a server, else 0."
        case .jetstreamInFlight:
            return "Messages the JetStream sink published that the stream has not acknowledged yet."
        case .jetstreamAcknowledged:
            return "Messages the stream acknowledged (stored, or already stored under the same message id)."
        case .jetstreamDuplicates:
            return "Acknowledgements that said the stream already had the message id (not stored again)."
        case .jetstreamRetried:
            return "Publishes sent again after an ack timeout, an error or a reconnect."
        }
    }

    /// Ping round trips: 0.1 ms (same host) to 5 s (a congested link close to `pong_timeout`).
    public static let pingRTTBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5),
    ]
}
