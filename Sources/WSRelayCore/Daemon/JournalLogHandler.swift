import CSystemd
import Glibc
import Logging

/// Sends log records to the systemd journal as structured entries.
///
/// With `sd_journal_sendv` every record keeps its priority, source location and metadata as separate, indexed
/// fields (`journalctl UPSTREAM=market -p warning`), which plain lines on stderr would lose.
/// Metadata key `upstream` becomes the field `UPSTREAM`; other keys become `WSRELAY_<KEY>`.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let control: LogLevelControl
    private let identifier: String

    public init(identifier: String = "wsrelay", control: LogLevelControl) {
        self.identifier = identifier
        self.control = control
    }

    public var logLevel: Logger.Level {
        get { control.level }
        set { control.level = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String] = [
            "MESSAGE=\(event.message)",
            "PRIORITY=\(Self.priority(event.level))",
            "SYSLOG_IDENTIFIER=\(identifier)",
            "CODE_FILE=\(event.file)",
            "CODE_LINE=\(event.line)",
            "CODE_FUNC=\(event.function)",
        ]
        let merged = LogRecordFields.merged(handler: metadata, provider: metadataProvider, event: event.metadata)
        for (key, value) in merged {
            fields.append("\(Self.fieldName(key))=\(value)")
        }
        Self.send(fields)
    }

    static func send(_ fields: [String]) {
        // One contiguous buffer, then an iovec per field pointing into it.
        var storage: [UInt8] = []
        var ranges: [Range<Int>] = []
        for field in fields {
            let start = storage.count
            storage.append(contentsOf: field.utf8)
            ranges.append(start..<storage.count)
        }
        storage.withUnsafeMutableBytes { raw in
            var vectors = ranges.map { range in
                iovec(iov_base: raw.baseAddress! + range.lowerBound, iov_len: range.count)
            }
            _ = sd_journal_sendv(&vectors, Int32(vectors.count))
        }
    }

    /// syslog(3) priorities, as journald expects them.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// Journal field names are upper-case letters, digits and underscores, not starting with an underscore.
    static func fieldName(_ key: String) -> String {
        let cleaned = String(key.uppercased().map { ($0.isLetter && $0.isASCII) || $0.isNumber ? $0 : "_" })
        return key == "upstream" ? "UPSTREAM" : "WSRELAY_" + cleaned
    }
}
