import Logging
import NIOConcurrencyHelpers

/// Collects every log record (level, label, message, metadata, source, file) as one line, for inspection.
public final class LogCapture: Sendable {
    private let lines = NIOLockedValueBox<[String]>([])

    public init() {}

    public var all: [String] { lines.withLockedValue { $0 } }
    public var joined: String { all.joined(separator: "\n") }

    public func count(containing text: String) -> Int { all.filter { $0.contains(text) }.count }
    public func count(level: Logger.Level) -> Int { all.filter { $0.hasPrefix("\(level) ") }.count }

    /// A logger whose records land here.
    public func logger(_ label: String = "test", level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label) { [self] label in Handler(capture: self, label: label) }
        logger.logLevel = level
        return logger
    }

    fileprivate func append(_ line: String) { lines.withLockedValue { $0.append(line) } }

    struct Handler: LogHandler {
        let capture: LogCapture
        let label: String
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            if let extra = event.metadata { merged.merge(extra) { $1 } }
            let meta = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.append("\(event.level) \(label) \(event.message) \(meta) \(event.source) \(event.file)")
        }
    }
}
