import Glibc
import Logging

/// Log lines for a terminal or a plain log file: UTC timestamp, level, message, then metadata as key=value.
///
/// Each record is written with a single `write(2)` so lines from concurrent tasks never interleave.
public struct StderrLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let control: LogLevelControl
    private let label: String

    public init(label: String, control: LogLevelControl) {
        self.label = label
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
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160)
        WallClockTime.now().appendRFC3339(to: &bytes)
        bytes.append(contentsOf: " \(event.level) ".utf8)
        bytes.append(contentsOf: event.message.description.utf8)
        let merged = LogRecordFields.merged(handler: metadata, provider: metadataProvider, event: event.metadata)
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            bytes.append(contentsOf: " \(key)=\(value)".utf8)
        }
        bytes.append(UInt8(ascii: "\n"))
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(STDERR_FILENO, raw.baseAddress! + offset, raw.count - offset)
                if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }
}

/// Merging of the three metadata layers swift-log defines, shared by the stderr and journal handlers.
enum LogRecordFields {
    static func merged(
        handler: Logger.Metadata,
        provider: Logger.MetadataProvider?,
        event: Logger.Metadata?
    ) -> Logger.Metadata {
        var result = handler
        if let provided = provider?.get() { result.merge(provided) { _, new in new } }
        if let event { result.merge(event) { _, new in new } }
        return result
    }
}
