import Foundation

/// The answer to `status`: everything an operator needs to see which upstream is down, why, since when and
/// when it retries, plus what the sinks and subscribers are doing.
///
/// It is the control socket's wire format (`wsrelay status --json` prints it unchanged, for scripts), so
/// it uses plain JSON types: times as RFC 3339 strings next to their age in seconds, durations in
/// milliseconds, keys in snake_case. It never contains a token, only fingerprints.
public struct StatusReport: Codable, Sendable, Equatable {
    public struct DaemonInfo: Codable, Sendable, Equatable {
        public var pid: Int32
        public var version: String
        public var startedAt: String
        public var uptimeSeconds: Double
        public var config: String
        /// The same one line systemd shows (`STATUS=`), worst problem first.
        public var summary: String
        public var generatedAt: String
    }

    public struct Upstream: Codable, Sendable, Equatable {
        public var name: String
        /// scheme://host:port/path — the query is left out (it may carry secrets someone put there).
        public var url: String
        public var state: String
        public var since: String
        public var sinceSeconds: Double
        public var epoch: UInt64
        public var attempt: Int
        public var messages: UInt64
        public var bytes: UInt64
        /// Messages per second over the last few seconds.
        public var messageRate: Double
        public var lastMessageAt: String?
        public var lastMessageAgeSeconds: Double?
        public var lastCloseCode: UInt16?
        public var lastCloseReason: String?
        public var lastError: String?
        public var nextRetryAt: String?
        public var nextRetryInSeconds: Double?
        public var pongRttMs: Double?
        public var connects: Int
        public var disconnects: [String: Int]
        public var paused: Bool
        public var credential: String?
        public var credentialState: String?
        public var tokenFingerprint: String?
        public var tokenExpiresAt: String?
        /// The open connection's agreed permessage-deflate parameters as a header value; nil: uncompressed.
        public var compression: String?
        /// Inflated bytes per wire byte of the compressed messages received on that connection.
        public var compressionRatio: Double?
        /// Messages local programs persisted (`wsrelay send --persist`), sent on every connect after `subscribe`.
        public var persistedSends: [String]? = nil
    }

    public struct Credential: Codable, Sendable, Equatable {
        public var name: String
        public var type: String
        public var state: String
        public var tokenFingerprint: String?
        public var expiresAt: String?
        public var lastRefreshAt: String?
        public var nextRetryAt: String?
        public var refreshesSucceeded: UInt64
        public var refreshesFailed: UInt64
        public var refreshesRejected: UInt64
        public var lastError: String?
    }

    public struct Subscriber: Codable, Sendable, Equatable {
        public var pid: Int32
        public var uid: UInt32
        public var gid: UInt32
        public var connectedAt: String
        public var queuedBytes: Int
        public var queueCapacity: Int
        public var bytesWritten: UInt64
        public var dropped: UInt64
        public var upstreams: [String]
    }

    public struct Sink: Codable, Sendable, Equatable {
        public var kind: String
        public var name: String
        public var format: String
        public var upstreams: [String]
        public var bytesWritten: UInt64
        public var bufferedBytes: Int
        public var bufferCapacity: Int
        public var dropped: UInt64
        public var writeErrors: UInt64
        public var lastError: String?
        public var failing: Bool
        public var pausingUpstreams: Bool
        public var slowDisconnects: UInt64
        public var subscribers: [Subscriber]
        /// JetStream sinks only.
        public var jetstream: JetStream? = nil
    }

    public struct JetStream: Codable, Sendable, Equatable {
        public var connectedServer: String?
        public var inFlight: Int
        public var pending: Int
        public var acknowledged: UInt64
        public var duplicates: UInt64
        public var retried: UInt64
    }

    public var daemon: DaemonInfo
    public var upstreams: [Upstream]
    public var credentials: [Credential]
    public var sinks: [Sink]
}

extension StatusReport {
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}
