import Logging
import ServiceLifecycle

/// `[[sink]] type = "file"` and `[[sink]] type = "stdout"`: lines appended to a file, or written to file
/// descriptor 1, by a writer thread of its own. One class: both are a `LineWriter` on a `FileOutput`; they
/// differ only in their target and defaults.
///
/// - file: the path is opened (and created with `mode`) at startup; `buffer` (default 64 MiB), `on_full`,
///   `fsync`, rotation and SIGHUP reopening as configured.
/// - stdout: a 64 MiB buffer under `on_full = "block"` (a reader that stops reading pauses the upstreams,
///   nothing is lost); never reopened or rotated.
///
/// See `LineWriter` for batching, errors, reopening and shutdown, and `SinkQueueStateMachine` for what
/// happens when the buffer is full (`on_full`).
public final class FileSink: Service, LineSink, Sendable {
    let settings: SinkSettings
    let writer: LineWriter
    let format: SinkFormat
    let selection: UpstreamSelection
    let wantsEvents: Bool
    /// For status and metrics: `.file` with the path, or `.stdout`.
    private let kind: SinkStatus.Kind
    private let name: String

    static let stdoutBufferCapacity = 64 * 1024 * 1024

    /// Opens (and if needed creates) the file; a failure is a startup error naming the path and the cause.
    convenience init(
        settings: SinkSettings, file: FileSinkSettings, directory: UpstreamDirectory, registry: FlowControlRegistry,
        forcedExit: ForcedExit, logger: Logger
    ) throws(SetupError) {
        let output = FileOutput(target: .path(file.path, mode: file.mode))
        do throws(SystemError) {
            try output.open()
        } catch {
            throw SetupError("file sink \(file.path): cannot open: \(SystemError.describe(error.errno))")
        }
        var configuration = LineWriter.Configuration(
            label: "file sink \(file.path)", target: output.target, capacity: file.buffer, onFull: file.onFull)
        configuration.fsync = file.fsync
        configuration.fsyncInterval = file.fsyncInterval
        configuration.rotateSize = file.rotateSize
        configuration.rotateKeep = file.rotateKeep
        var logger = logger
        logger[metadataKey: "sink"] = "file:\(file.path)"
        LineWriter.logTornLine(output, label: configuration.label, logger: logger)
        self.init(settings: settings, kind: .file, name: file.path, output: output, configuration: configuration,
                  directory: directory, registry: registry, forcedExit: forcedExit, logger: logger)
    }

    /// The stdout sink (`descriptor` 1 unless a test hands in a pipe).
    convenience init(
        stdout settings: SinkSettings, descriptor: Int32 = 1, directory: UpstreamDirectory,
        registry: FlowControlRegistry, forcedExit: ForcedExit, logger: Logger
    ) {
        let output = FileOutput(target: .descriptor(descriptor, name: "stdout"))
        let configuration = LineWriter.Configuration(
            label: "stdout sink", target: output.target, capacity: Self.stdoutBufferCapacity, onFull: .block)
        var logger = logger
        logger[metadataKey: "sink"] = "stdout"
        self.init(settings: settings, kind: .stdout, name: "stdout", output: output, configuration: configuration,
                  directory: directory, registry: registry, forcedExit: forcedExit, logger: logger)
    }

    private init(
        settings: SinkSettings, kind: SinkStatus.Kind, name: String, output: FileOutput,
        configuration: LineWriter.Configuration, directory: UpstreamDirectory, registry: FlowControlRegistry,
        forcedExit: ForcedExit, logger: Logger
    ) {
        self.settings = settings
        self.kind = kind
        self.name = name
        format = settings.format
        wantsEvents = settings.events
        selection = UpstreamSelection(names: settings.upstreams, directory: directory)
        writer = LineWriter(
            configuration: configuration, output: output, selection: selection, events: settings.events,
            directory: directory, registry: registry, forcedExit: forcedExit, logger: logger)
    }

    func enqueue(_ batch: EncodedBatch) {
        writer.enqueue(batch)
    }

    /// SIGHUP: close and reopen the path (after logrotate without `copytruncate`); nothing for stdout.
    public func reopen() {
        writer.requestReopen()
    }

    public func run() async throws {
        try await writer.run(threadName: kind == .stdout ? "wsrelay-stdout" : "wsrelay-file")
    }

    var status: SinkStatus {
        var status = SinkStatus(kind: kind, name: name, format: format, upstreams: settings.upstreams)
        status.fill(from: writer.snapshot)
        return status
    }
}

extension SinkStatus {
    mutating func fill(from snapshot: LineWriter.Snapshot) {
        bytesWritten = snapshot.counters.bytesWritten
        writes = snapshot.counters.writes
        bufferedBytes = snapshot.buffered
        bufferCapacity = snapshot.capacity
        dropped = snapshot.dropped
        writeErrors = snapshot.counters.writeErrors
        lastError = snapshot.counters.lastError
        failing = snapshot.counters.failing
        pausingUpstreams = snapshot.pausing
    }
}
