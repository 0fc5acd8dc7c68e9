import ServiceLifecycle

/// One open sink of any kind, with the settings it was opened from (a reload compares those).
enum OpenedSink: Sendable {
    /// A file or stdout sink.
    case file(FileSink)
    case unix(UnixSocketSink)
    case journal(JournalSink)
    case jetstream(JetStreamSink)

    var settings: SinkSettings {
        switch self {
        case .file(let sink): sink.settings
        case .unix(let sink): sink.settings
        case .journal(let sink): sink.settings
        case .jetstream(let sink): sink.settings
        }
    }

    var service: any Service & Sendable {
        switch self {
        case .file(let sink): sink
        case .unix(let sink): sink
        case .journal(let sink): sink
        case .jetstream(let sink): sink
        }
    }

    var lineSink: (any LineSink)? {
        switch self {
        case .file(let sink): sink
        case .unix(let sink): sink
        case .journal, .jetstream: nil
        }
    }

    var eventSink: (any RelayEventSink)? {
        switch self {
        case .journal(let sink): return sink
        case .jetstream(let sink): return sink
        default: return nil
        }
    }

    var status: SinkStatus {
        switch self {
        case .file(let sink): sink.status
        case .unix(let sink): sink.status
        case .journal(let sink): sink.status
        case .jetstream(let sink): sink.status
        }
    }

    /// Two sinks that cannot both be open at once: the same socket path (a file may be appended to by an
    /// old and a new sink while the old one drains).
    func collides(with other: SinkSettings) -> Bool {
        if case .unix(let mine) = settings.kind, case .unix(let theirs) = other.kind {
            return mine.path != nil && mine.path == theirs.path
        }
        return false
    }

    /// Releases a sink that never ran (its siblings failed to open).
    func closeWithoutRunning() async {
        switch self {
        case .file(let sink): sink.writer.requestStop(.abort)
        case .unix(let sink): await sink.closeWithoutRunning()
        case .jetstream(let sink): sink.closeWithoutRunning()
        case .journal: break
        }
    }
}
