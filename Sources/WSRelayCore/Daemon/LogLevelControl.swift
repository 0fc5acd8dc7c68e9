import Logging
import NIOConcurrencyHelpers

/// The process-wide log level, changeable at runtime by a reload.
///
/// swift-log copies a handler's `logLevel` into each `Logger` value, so a reload could not reach loggers that
/// parts of the daemon already hold. Handlers consult this shared box instead.
public final class LogLevelControl: Sendable {
    private let box: NIOLockedValueBox<Logger.Level>

    public init(_ level: Logger.Level) { box = NIOLockedValueBox(level) }

    public var level: Logger.Level {
        get { box.withLockedValue { $0 } }
        set { box.withLockedValue { $0 = newValue } }
    }
}
