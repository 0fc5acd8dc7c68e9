import Logging
import NIOCore
import ServiceLifecycle

/// Every sink of one configuration, the router that feeds them, and their services.
///
/// The runtime opens it before READY=1 (files opened, sockets bound: errors are startup errors), gives
/// `router` to the upstreams as their `RelayEventConsumer`, and runs `services` in the daemon's
/// `ServiceGroup` *before* the upstreams in the service list, so that graceful shutdown (reverse order)
/// stops the upstreams first and then lets each sink drain, flush and fsync.
///
/// A `SinkSet` is self-contained: a reload that changes sinks can open a new one, point the upstreams at the
/// new router, and shut the old one's services down.
public final class SinkSet: Sendable {
    public let router: MessageRouter
    let fileSinks: [FileSink]
    let stdoutSinks: [StdoutSink]
    let unixSinks: [UnixSocketSink]
    let journalSinks: [JournalSink]
    /// In configuration order.
    private let ordered: [any Service & Sendable]

    private init(router: MessageRouter, ordered: [any Service & Sendable], fileSinks: [FileSink], stdoutSinks: [StdoutSink],
                 unixSinks: [UnixSocketSink], journalSinks: [JournalSink]) {
        self.router = router
        self.ordered = ordered
        self.fileSinks = fileSinks
        self.stdoutSinks = stdoutSinks
        self.unixSinks = unixSinks
        self.journalSinks = journalSinks
    }

    /// Opens files and binds sockets. A thrown error is a startup error (`SinkSetupError`, one line naming the
    /// path and the cause); whatever was opened before it is closed again.
    public static func open(
        _ settings: [SinkSettings], upstreamNames: [String], group: any EventLoopGroup, forcedExit: ForcedExit,
        environment: [String: String], logger: Logger
    ) async throws -> SinkSet {
        try await open(settings, upstreamNames: upstreamNames, group: group, forcedExit: forcedExit,
                       inheritedSockets: SocketActivation.inheritedSockets(environment: environment), logger: logger)
    }

    /// The same, with the socket-activation descriptors given directly (tests hand in their own).
    static func open(
        _ settings: [SinkSettings], upstreamNames: [String], group: any EventLoopGroup, forcedExit: ForcedExit,
        inheritedSockets: [SocketActivation.InheritedSocket], logger: Logger
    ) async throws -> SinkSet {
        let directory = UpstreamDirectory(names: upstreamNames)
        let registry = FlowControlRegistry()
        var inherited = inheritedSockets
        var ordered: [any Service & Sendable] = []
        var lineSinks: [any LineSink] = []
        var files: [FileSink] = []
        var stdouts: [StdoutSink] = []
        var unixes: [UnixSocketSink] = []
        var journals: [JournalSink] = []
        do {
            for sink in settings {
                switch sink.kind {
                case .file(let file):
                    let opened = try FileSink(settings: sink, file: file, directory: directory, registry: registry,
                                              forcedExit: forcedExit, logger: logger)
                    files.append(opened)
                    lineSinks.append(opened)
                    ordered.append(opened)
                case .stdout:
                    let opened = StdoutSink(settings: sink, directory: directory, registry: registry,
                                            forcedExit: forcedExit, logger: logger)
                    stdouts.append(opened)
                    lineSinks.append(opened)
                    ordered.append(opened)
                case .unix(let unix):
                    let opened = try await UnixSocketSink.open(settings: sink, unix: unix, group: group, directory: directory,
                                                               inherited: &inherited, logger: logger)
                    unixes.append(opened)
                    lineSinks.append(opened)
                    ordered.append(opened)
                case .journal:
                    let opened = JournalSink(settings: sink, directory: directory, logger: logger)
                    journals.append(opened)
                    ordered.append(opened)
                }
            }
        } catch {
            // Release what was opened: close sockets (removing their files) and files.
            for sink in unixes { await sink.closeWithoutRunning() }
            for sink in files { sink.writer.requestStop(.abort) }
            throw error
        }
        let router = MessageRouter(directory: directory, registry: registry, lineSinks: lineSinks, eventSinks: journals)
        return SinkSet(router: router, ordered: ordered, fileSinks: files, stdoutSinks: stdouts, unixSinks: unixes,
                       journalSinks: journals)
    }

    /// One service per sink, in configuration order. Each runs until graceful shutdown, then drains what is
    /// queued (files: written, flushed, fsynced; subscribers: up to 2 s) and returns.
    public var services: [any Service] { ordered }

    /// SIGHUP: every file sink closes and reopens its path.
    public func reopenFiles() {
        for sink in fileSinks { sink.reopen() }
    }

    /// Counters of every sink, in configuration order.
    public func snapshot() -> [SinkStatus] {
        ordered.compactMap { service -> SinkStatus? in
            switch service {
            case let sink as FileSink: return sink.status
            case let sink as StdoutSink: return sink.status
            case let sink as UnixSocketSink: return sink.status
            case let sink as JournalSink: return sink.status
            default: return nil
            }
        }
    }
}
