/// Numbers one sink reports for status output and metrics; a snapshot, taken without stopping anything.
public struct SinkStatus: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case file, unix, stdout, journal
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
