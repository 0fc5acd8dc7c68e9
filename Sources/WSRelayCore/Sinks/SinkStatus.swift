/// Numbers one sink reports for status output and metrics; a snapshot, taken without stopping anything.
public struct SinkStatus: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case file, unix, stdout, journal, jetstream
    }

    /// What only a JetStream sink has: its connection and the in-flight window.
    public struct JetStream: Sendable, Equatable {
        /// The server connected now; nil while disconnected.
        public var connectedServer: String?
        /// Published, not yet acknowledged.
        public var inFlight: Int
        /// Received, not yet published (including messages waiting to be sent again).
        public var pending: Int
        public var acknowledged: UInt64
        /// Acknowledged as duplicates (the stream already had that message id).
        public var duplicates: UInt64
        /// Publishes sent again after a timeout, an error or a reconnect.
        public var retried: UInt64

        public init(connectedServer: String?, inFlight: Int, pending: Int, acknowledged: UInt64, duplicates: UInt64,
                    retried: UInt64) {
            self.connectedServer = connectedServer
            self.inFlight = inFlight
            self.pending = pending
            self.acknowledged = acknowledged
            self.duplicates = duplicates
            self.retried = retried
        }
    }

    public var kind: Kind
    /// The file or socket path; `stdout`/`journal` for those.
    public var name: String
    public var format: SinkFormat
    /// Upstreams this sink takes; empty means all.
    public var upstreams: [String]
    public var bytesWritten: UInt64 = 0
    /// Successful write operations: write(2)/writev(2) calls (file, stdout), journal entries sent, flushes
    /// to subscribers (summed over them).
    public var writes: UInt64 = 0
    /// Bytes queued but not yet written (file, stdout, journal; for Unix sockets the sum over subscribers).
    public var bufferedBytes: Int = 0
    public var bufferCapacity: Int = 0
    /// Messages this sink dropped (for Unix sockets: dropped for subscribers, summed, including ones that
    /// have since disconnected).
    public var dropped: UInt64 = 0
    public var writeErrors: UInt64 = 0
    public var lastError: String? = nil
    /// In a write-error episode right now.
    public var failing: Bool = false
    /// Under `on_full = "block"`: the upstreams are paused because this sink is full.
    public var pausingUpstreams: Bool = false
    /// Unix sockets: subscribers connected now.
    public var subscribers: [SubscriberStatus] = []
    /// Unix sockets: subscribers disconnected because they were too slow, since start.
    public var slowDisconnects: UInt64 = 0
    /// JetStream sinks only.
    public var jetstream: JetStream? = nil

    public init(kind: Kind, name: String, format: SinkFormat, upstreams: [String]) {
        self.kind = kind
        self.name = name
        self.format = format
        self.upstreams = upstreams
    }
}

public struct SubscriberStatus: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
    public var connectedAt: WallClockTime
    /// Bytes handed to the connection that the kernel has not taken yet.
    public var queuedBytes: Int
    public var queueCapacity: Int
    public var bytesWritten: UInt64
    public var dropped: UInt64
    /// What it subscribed to; empty means everything the socket carries.
    public var upstreams: [String]

    public init(pid: Int32, uid: UInt32, gid: UInt32, connectedAt: WallClockTime, queuedBytes: Int, queueCapacity: Int,
                bytesWritten: UInt64, dropped: UInt64, upstreams: [String]) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.connectedAt = connectedAt
        self.queuedBytes = queuedBytes
        self.queueCapacity = queueCapacity
        self.bytesWritten = bytesWritten
        self.dropped = dropped
        self.upstreams = upstreams
    }
}

extension SinkStatus {
    /// One phrase for `STATUS=` when the sink cannot deliver now; nil when it can. Only JetStream sinks report
    /// here: their failures (an unreachable cluster, a stream mismatch) last, while file errors are retried
    /// within milliseconds and show in `wsrelay status`.
    public var problem: String? {
        guard let jetstream, failing else { return nil }
        if jetstream.connectedServer == nil { return "jetstream \(name): \(lastError ?? "not connected")" }
        return "jetstream \(name): \(lastError ?? "failing")"
    }
}
