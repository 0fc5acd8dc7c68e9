import CSystemd
import Glibc
import Logging
import NIOCore
import ServiceLifecycle

/// `[[sink]] type = "journal"`: one journal entry per message, sent with `sd_journal_sendv` from a writer
/// thread of its own.
///
/// Entry fields: `MESSAGE=` the text payload (binary: `binary message, N bytes`, and the bytes themselves in
/// `WSRELAY_DATA=`, which journald stores binary-safe), `PRIORITY=6`,
/// `SYSLOG_IDENTIFIER=wsrelay`, `WSRELAY_UPSTREAM=`, `WSRELAY_EPOCH=`, `WSRELAY_SEQ=`, `WSRELAY_TYPE=text|binary`,
/// `WSRELAY_TS=` (receive time). With `events = true` also connected/disconnected entries
/// (`WSRELAY_EVENT=connected|disconnected`, `WSRELAY_CODE=`, `WSRELAY_REASON=`); gap entries
/// (`WSRELAY_EVENT=gap`, `WSRELAY_DROPPED=`, `WSRELAY_FIRST_SEQ=`, `WSRELAY_LAST_SEQ=`, priority 4) always.
///
/// The journal is a log, not a transport: it never pauses upstreams. Its buffer is 8 MiB under `drop`;
/// journald itself rate-limits. On graceful shutdown it sends what is queued unless the journal is failing.
// @unchecked Sendable: `thread`'s lock guards queue, machine, sent, sentBytes, errors, lastError, failing; pending, episode, scratch are the writer thread's own.
public final class JournalSink: Service, RelayEventSink, @unchecked Sendable {
    typealias Send = @Sendable (_ fields: UnsafeMutablePointer<iovec>, _ count: Int32) -> Int32

    enum Item {
        case event(RelayEvent)
        case gap(GapCounter.Gap)
    }

    static let bufferCapacity = 8 * 1024 * 1024
    /// Per-entry bookkeeping bytes counted on top of the payload.
    static let entryOverhead = 160

    let settings: SinkSettings
    private let selection: UpstreamSelection
    private let directory: UpstreamDirectory
    private let logger: Logger
    private let send: Send
    private let thread = SinkWriterThread()

    // Guarded by `thread`'s lock.
    private var queue: [Item] = []
    private var machine = SinkQueueStateMachine(capacity: JournalSink.bufferCapacity, policy: .drop)
    private var sent: UInt64 = 0
    private var sentBytes: UInt64 = 0
    private var errors: UInt64 = 0
    private var lastError: String? = nil
    private var failing = false

    // Writer thread only.
    private var pending: [Item] = []
    private var episode = WriteErrorEpisode()
    private var scratch = JournalEntry()

    init(settings: SinkSettings, directory: UpstreamDirectory, logger: Logger, send: Send? = nil) {
        self.settings = settings
        self.selection = UpstreamSelection(names: settings.upstreams, directory: directory)
        self.directory = directory
        var logger = logger
        logger[metadataKey: "sink"] = "journal"
        self.logger = logger
        self.send = send ?? { sd_journal_sendv($0, $1) }
    }

    func enqueue(_ events: [RelayEvent]) {
        thread.withLock {
            if thread.finished { return }
            _ = machine.admit(events, selection: selection, events: settings.events, directory: directory,
                              overhead: Self.entryOverhead) { event, _ in queue.append(.event(event)) }
            thread.wakeIfSleeping()
        }
    }

    public func run() async throws {
        try await thread.run(name: "wsrelay-journal") { self.runLoop() }
    }

    var status: SinkStatus {
        var status = SinkStatus(kind: .journal, name: "journal", format: settings.format, upstreams: settings.upstreams)
        thread.withLock {
            status.bytesWritten = sentBytes
            status.writes = sent
            status.bufferedBytes = machine.buffered
            status.bufferCapacity = machine.capacity
            status.dropped = machine.totalDropped
            status.writeErrors = errors
            status.lastError = lastError
            status.failing = failing
        }
        return status
    }

    // MARK: Writer thread

    func runLoop() {
        while true {
            let stop: SinkWriterThread.StopRequest = thread.withLock {
                while true {
                    if !queue.isEmpty {
                        pending.append(contentsOf: queue)
                        queue.removeAll(keepingCapacity: true)
                    }
                    if thread.stopRequest == .abort { return .abort }
                    if !pending.isEmpty && episode.mayRetry(now: .now) { return thread.stopRequest }
                    if pending.isEmpty && thread.stopRequest == .drain { return .drain }
                    thread.sleep(until: pending.isEmpty ? nil : episode.retryAt)
                }
            }
            if stop == .abort || (stop == .drain && (pending.isEmpty || episode.isActive)) {
                let lost = pending.count
                pending.removeAll()
                thread.withLock { thread.finished = true }
                if lost > 0 {
                    logger.error("journal sink: stopped with entries unsent", metadata: ["unsent": "\(lost)"])
                }
                return
            }
            sendPending()
        }
    }

    private func sendPending() {
        var index = 0
        while index < pending.count {
            let item = pending[index]
            scratch.reset()
            scratch.build(item, names: directory)
            let result = scratch.withIOVecs { send($0, $1) }
            if result < 0 {
                let error = SystemError(errno: -result, operation: "sd_journal_sendv")
                let isNew = episode.failed(error.description, now: .now)
                thread.withLock {
                    errors += 1
                    lastError = error.description
                    failing = true
                }
                if isNew { logger.error("journal sink: \(error); keeping entries queued and retrying") }
                break
            }
            if let recovery = episode.succeeded(now: .now) {
                logger.notice("journal sink: sending again", metadata: ["failed_attempts": "\(recovery.failures)"])
            }
            let cost: Int
            switch item {
            case .event(.message(let m)): cost = m.payload.readableBytes + Self.entryOverhead
            default: cost = Self.entryOverhead
            }
            thread.withLock {
                sent += 1
                sentBytes += UInt64(scratch.storage.count)
                failing = false
                if case .writeGaps(let gaps) = machine.written(cost) {
                    for gap in gaps {
                        machine.admitUnconditionally(Self.entryOverhead)
                        queue.append(.gap(gap))
                    }
                }
            }
            index += 1
        }
        pending.removeFirst(index)
    }
}
