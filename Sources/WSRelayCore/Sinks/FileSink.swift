import Logging
import ServiceLifecycle

/// `[[sink]] type = "file"`: lines appended to a file by a writer thread of its own.
///
/// See `LineWriter` for batching, errors, reopening and shutdown, and `SinkQueueStateMachine` for what
/// happens when the buffer (`buffer`, default 64 MiB) is full (`on_full`).
public final class FileSink: Service, LineSink, Sendable {
    let settings: SinkSettings
    let file: FileSinkSettings
    let writer: LineWriter
    let format: SinkFormat
    let selection: UpstreamSelection
    let wantsEvents: Bool

    /// Opens (and if needed creates) the file; a failure is a startup error naming the path and the cause.
    init(
        settings: SinkSettings, file: FileSinkSettings, directory: UpstreamDirectory, registry: FlowControlRegistry,
        forcedExit: ForcedExit, logger: Logger
    ) throws(SetupError) {
        self.settings = settings
        self.file = file
        format = settings.format
        wantsEvents = settings.events
        selection = UpstreamSelection(names: settings.upstreams, directory: directory)
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
        writer = LineWriter(
            configuration: configuration, output: output, selection: selection, events: settings.events,
            directory: directory, registry: registry, forcedExit: forcedExit, logger: logger)
    }

    func enqueue(_ batch: EncodedBatch) {
        writer.enqueue(batch)
    }

    /// SIGHUP: close and reopen the path (after logrotate without `copytruncate`).
    public func reopen() {
        writer.requestReopen()
    }

    public func run() async throws {
        try await writer.runOnDedicatedThread(name: "wsrelay-file")
    }

    var status: SinkStatus {
        var status = SinkStatus(kind: .file, name: file.path, format: format, upstreams: settings.upstreams)
        status.fill(from: writer.snapshot)
        return status
    }
}

/// `[[sink]] type = "stdout"`: lines written to file descriptor 1 by the same writer code as files
/// (64 MiB buffer, `on_full = "block"`: a reader that stops reading pauses the upstreams, nothing is lost).
public final class StdoutSink: Service, LineSink, Sendable {
    let settings: SinkSettings
    let writer: LineWriter
    let format: SinkFormat
    let selection: UpstreamSelection
    let wantsEvents: Bool

    static let bufferCapacity = 64 * 1024 * 1024

    init(
        settings: SinkSettings, descriptor: Int32 = 1, directory: UpstreamDirectory, registry: FlowControlRegistry,
        forcedExit: ForcedExit, logger: Logger
    ) {
        self.settings = settings
        format = settings.format
        wantsEvents = settings.events
        selection = UpstreamSelection(names: settings.upstreams, directory: directory)
        let output = FileOutput(target: .descriptor(descriptor, name: "stdout"))
        let configuration = LineWriter.Configuration(
            label: "stdout sink", target: output.target, capacity: Self.bufferCapacity, onFull: .block)
        var logger = logger
        logger[metadataKey: "sink"] = "stdout"
        writer = LineWriter(
            configuration: configuration, output: output, selection: selection, events: settings.events,
            directory: directory, registry: registry, forcedExit: forcedExit, logger: logger)
    }

    func enqueue(_ batch: EncodedBatch) {
        writer.enqueue(batch)
    }

    public func run() async throws {
        try await writer.runOnDedicatedThread(name: "wsrelay-stdout")
    }

    var status: SinkStatus {
        var status = SinkStatus(kind: .stdout, name: "stdout", format: format, upstreams: settings.upstreams)
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
