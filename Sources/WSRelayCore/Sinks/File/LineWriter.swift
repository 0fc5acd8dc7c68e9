import Glibc
import Logging
import NIOCore

/// The writer behind a file or stdout sink: a bounded queue that event loops append to, and one dedicated
/// thread that empties it into a file descriptor with as few syscalls as it can.
///
/// ## Threads
/// - Event loops call `enqueue` (via the router): under the lock they run the admission policy
///   (`SinkQueueStateMachine`) and append `ByteBuffer` slices of the batch — no copy, no syscall, and a
///   condition signal only when the writer is asleep.
/// - The writer thread (`runLoop`) takes everything queued in one go and writes it with `writev(2)` (up to
///   1024 buffers / 8 MiB per call), each call inside `ForcedExit.whileWriting` with this writer's own gate
///   (writers never wait for each other). A full pipe or socket writes nothing and the thread waits for it
///   to drain outside the gate, so a reader that stops delays neither a forced exit nor an abort.
///
/// ## Coalescing
/// Waking the writer costs a futex call on the event loop and a context switch, about as much as writing a
/// 4 KiB line. When a source sends one small message per TCP segment (most asyncio servers do), every read
/// is one line and every line would wake the writer: 4.6–5.9 µs of relay CPU per 100-byte message from
/// picows, against 0.55 µs when reads carry hundreds of lines. So after a write the writer lingers for
/// `linger` (1 ms): lines queued meanwhile do not wake it unless they add up to `lingerBypassBytes`, and
/// go out together when it ends. A writer that found nothing after lingering sleeps as before, so a quiet
/// stream's line is written at once; in a flood of small reads a line waits at most 1 ms longer.
///
/// ## Guarantees
/// - Lines are written whole and in queue order. A short write keeps the unwritten remainder at the head of
///   the queue and writes it first; nothing else is ever written between the two parts.
/// - Errors (ENOSPC, EIO, EFBIG, a failed reopen with EACCES, ...) keep the data queued; the writer retries
///   with backoff (100 ms doubling to 5 s) and logs once when an episode starts and once when it ends.
/// - `reopen()` (SIGHUP), and the path naming another file (checked at least once a second, idle or busy),
///   close the descriptor and open `path` afresh (created with `mode`). Before that the writer finishes a
///   partially written line on the old descriptor.
/// - Graceful stop (`requestStop(.drain)`): everything queued is written (retrying errors until it
///   succeeds or the stop turns into `.abort`), then synced (whatever `fsync` says) and closed.
// @unchecked Sendable: `thread`'s lock guards queue, machine, reopenRequested, counters (and the thread's stop request); the rest is the writer thread's own or immutable.
final class LineWriter: @unchecked Sendable {
    struct Configuration: Sendable {
        var label: String
        var target: FileOutput.Target
        var capacity: Int
        var onFull: OnFullPolicy
        var fsync: FsyncPolicy = .never
        var fsyncInterval: Duration = .seconds(1)
        var rotateSize: Int? = nil
        var rotateKeep: Int = 5
        var identityCheckInterval: Duration = .seconds(1)
        var retryInitial: Duration = .milliseconds(100)
        var retryMax: Duration = .seconds(5)
        /// After a write, how long new lines may wait for more before the writer is woken for them (see
        /// "Coalescing" above); zero wakes it for every batch.
        var linger: Duration = LineWriter.defaultLinger
    }

    struct Counters: Sendable {
        var bytesWritten: UInt64 = 0
        var writes: UInt64 = 0
        var writeErrors: UInt64 = 0
        var lastError: String? = nil
        var failing = false
        var droppedAfterStop: UInt64 = 0
        var reopens: UInt64 = 0
    }

    let configuration: Configuration
    let selection: UpstreamSelection
    let events: Bool
    private let directory: UpstreamDirectory
    private let registry: FlowControlRegistry
    private let forcedExit: ForcedExit
    private let gate: ForcedExit.Gate
    private let logger: Logger
    private let thread = SinkWriterThread()
    private var token: ObjectIdentifier { ObjectIdentifier(self) }

    // MARK: Guarded by `thread`'s lock
    private var queue: [ByteBuffer] = []
    /// Bytes in `queue` (for the linger bypass).
    private var queuedBytes = 0
    private var machine: SinkQueueStateMachine
    private var reopenRequested = false
    private var counters = Counters()

    // MARK: Writer thread only
    private let output: FileOutput
    private var pending: [ByteBuffer] = []
    private var pendingHead = 0
    private var headPartial = false
    private var episode: WriteErrorEpisode
    private var needsReopen = false
    private var lastIdentityCheck = ContinuousClock.now
    private var lastSync = ContinuousClock.now
    private var dirty = false
    /// Something was written since the writer last slept: its next sleep lingers.
    private var wroteSinceSleep = false
    /// `fsync = "interval"` on a file: the periodic sync runs beside the writer (created when the loop starts).
    private var backgroundSync: BackgroundFileSync?
    private let vectors = UnsafeMutablePointer<iovec>.allocate(capacity: LineWriter.maximumVectors)

    static let maximumVectors = 1024
    static let defaultLinger: Duration = .milliseconds(1)
    /// Queued bytes that wake a lingering writer at once: a read's worth of lines, as a flood of large
    /// messages or of batched reads brings, is never held back.
    static let lingerBypassBytes = 64 * 1024
    static let maximumBytesPerWrite = 8 * 1024 * 1024
    /// How long one wait for a full pipe or socket lasts before the writer looks at its requests again.
    static let fullWaitMilliseconds: Int32 = 100

    init(
        configuration: Configuration, output: FileOutput, selection: UpstreamSelection, events: Bool, directory: UpstreamDirectory, registry: FlowControlRegistry, forcedExit: ForcedExit,
        logger: Logger
    ) {
        self.configuration = configuration
        self.output = output
        self.selection = selection
        self.events = events
        self.directory = directory
        self.registry = registry
        self.forcedExit = forcedExit
        self.gate = forcedExit.makeGate()
        self.logger = logger
        self.machine = SinkQueueStateMachine(capacity: configuration.capacity, onFull: configuration.onFull)
        self.episode = WriteErrorEpisode(initialDelay: configuration.retryInitial, maximumDelay: configuration.retryMax)
    }

    deinit {
        vectors.deallocate()
        output.close()
        forcedExit.release(gate)
    }

    // MARK: Event-loop side

    func enqueue(_ batch: EncodedBatch) {
        thread.withLock {
            if thread.finished {
                counters.droppedAfterStop += UInt64(batch.messageCount)
                return
            }
            let outcome = machine.admit(batch, selection: selection, events: events) { lines, _ in
                queue.append(lines)
                queuedBytes += lines.readableBytes
            }
            thread.wakeIfSleeping(urgent: queuedBytes >= Self.lingerBypassBytes)
            if outcome.pause { registry.pause(by: token, upstreams: selection) }
        }
    }

    func requestReopen() {
        thread.withLock {
            reopenRequested = true
            thread.wakeIfSleeping(urgent: true)
        }
    }

    func requestStop(_ request: SinkWriterThread.StopRequest) {
        thread.requestStop(request)
    }

    /// Runs the writer thread until graceful shutdown (drain) or cancellation (abort).
    func run(threadName: String) async throws {
        try await thread.run(name: threadName) { self.runLoop() }
    }

    struct Snapshot: Sendable {
        var counters: Counters
        var buffered: Int
        var capacity: Int
        var dropped: UInt64
        var pausing: Bool
    }

    var snapshot: Snapshot {
        thread.withLock {
            Snapshot(counters: counters, buffered: machine.buffered, capacity: machine.capacity,
                     dropped: machine.totalDropped + counters.droppedAfterStop, pausing: machine.pausing)
        }
    }

    // MARK: Writer thread

    private enum Step {
        case work(reopen: Bool)
        case finish
        case abort
    }

    /// Runs until a stop request has been carried out. Call once, on a thread that may block.
    func runLoop() {
        lastIdentityCheck = .now
        lastSync = .now
        if configuration.fsync == .interval, case .path = configuration.target {
            backgroundSync = BackgroundFileSync(threadName: "wsrelay-fsync") { [weak self] error in self?.syncFailed(error) }
            backgroundSync?.use(output.duplicateForSync())
        }
        loop: while true {
            switch nextStep() {
            case .abort:
                backgroundSync?.finish(wait: false)
                abandon()
                break loop
            case .finish:
                backgroundSync?.finish(wait: true)
                // Even under `fsync = "never"`: one sync at shutdown is cheap and the process is leaving.
                if dirty { syncNow(.now) }
                output.close()
                thread.withLock { thread.finished = true }
                break loop
            case .work(let reopen):
                doWork(reopen: reopen)
            }
        }
    }

    private var hasPending: Bool { pendingHead < pending.count }

    private func nextStep() -> Step {
        thread.withLock {
            while true {
                if thread.stopRequest == .abort { return .abort }
                if !queue.isEmpty {
                    if pending.isEmpty {
                        swap(&pending, &queue)
                    } else {
                        pending.append(contentsOf: queue)
                        queue.removeAll(keepingCapacity: true)
                    }
                    queuedBytes = 0
                }
                let reopen = reopenRequested
                reopenRequested = false
                let now = ContinuousClock.now
                let mayAct = episode.mayRetry(now: now)
                if reopen || (hasPending && mayAct && output.isOpen) || housekeepingDue(now) {
                    return .work(reopen: reopen)
                }
                if thread.stopRequest == .drain && !hasPending { return .finish }
                let linger = wroteSinceSleep && configuration.linger > .zero
                wroteSinceSleep = false
                if linger {
                    let lingerEnd = now + configuration.linger
                    thread.sleep(until: nextWake(now).map { min($0, lingerEnd) } ?? lingerEnd, lingering: true)
                } else {
                    thread.sleep(until: nextWake(now))
                }
            }
        }
    }

    private func housekeepingDue(_ now: ContinuousClock.Instant) -> Bool {
        if output.path != nil && now >= lastIdentityCheck + configuration.identityCheckInterval { return true }
        if needsReopen && episode.mayRetry(now: now) { return true }
        if dirty && configuration.fsync == .interval && now >= lastSync + configuration.fsyncInterval { return true }
        return false
    }

    private func nextWake(_ now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        var wake: ContinuousClock.Instant? = nil
        func consider(_ t: ContinuousClock.Instant) { wake = wake.map { min($0, t) } ?? t }
        if output.path != nil { consider(lastIdentityCheck + configuration.identityCheckInterval) }
        if dirty && configuration.fsync == .interval { consider(lastSync + configuration.fsyncInterval) }
        if let retry = episode.retryAt, hasPending || needsReopen { consider(retry) }
        return wake
    }

    private func doWork(reopen: Bool) {
        var now = ContinuousClock.now
        if reopen {
            self.reopen(because: "reopen requested")
        } else if output.path != nil && now >= lastIdentityCheck + configuration.identityCheckInterval {
            lastIdentityCheck = now
            if output.pathNamesAnotherFile() {
                self.reopen(because: "the path no longer names the open file")
            }
        }
        now = .now
        if needsReopen && episode.mayRetry(now: now) {
            self.reopen(because: "retrying")
        }
        if output.isOpen, let limit = configuration.rotateSize, output.size >= limit, !headPartial, hasPending {
            rotate()
        }
        if output.isOpen && hasPending && episode.mayRetry(now: .now) {
            writePending()
        }
        now = .now
        if dirty {
            switch configuration.fsync {
            case .always: syncNow(now)
            case .interval where now >= lastSync + configuration.fsyncInterval: intervalSync(now)
            default: break
            }
        }
    }

    /// One writev of the head of `pending`.
    private func writePending() {
        var count = 0
        var bytes = 0
        var index = pendingHead
        var limit = Self.maximumBytesPerWrite
        if let rotateSize = configuration.rotateSize {
            // Stop near the rotation size, so files exceed it by at most one batch of lines.
            limit = max(1, min(limit, rotateSize - output.size))
        }
        while index < pending.count && count < Self.maximumVectors && bytes < limit {
            let length = pending[index].readableBytes
            if length > 0 {
                pending[index].withUnsafeReadableBytesWithStorageManagement { pointer, _ in
                    // `pending` keeps the storage alive and unchanged until the writev below has returned.
                    vectors[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: pointer.baseAddress!),
                                           iov_len: pointer.count)
                }
                count += 1
                bytes += length
            }
            index += 1
        }
        if count == 0 {
            consume(0)
            return
        }
        let result: Result<Int, SystemError> = forcedExit.whileWriting(gate) {
            do throws(SystemError) { return .success(try output.write(vectors, count: count)) } catch { return .failure(error) }
        }
        switch result {
        case .success(let n):
            consume(n)
            if n == 0 { output.waitUntilWritable(milliseconds: Self.fullWaitMilliseconds) }
            if n > 0 { dirty = true; wroteSinceSleep = true }
            if let recovery = episode.succeeded(now: .now) { logRecovery(recovery) }
        case .failure(let error):
            failed(error)
        }
    }

    /// Drops `n` written bytes from the head of `pending` and tells the state machine.
    private func consume(_ n: Int) {
        var remaining = n
        while pendingHead < pending.count {
            let length = pending[pendingHead].readableBytes
            if remaining >= length {
                remaining -= length
                // Release the written buffer now, not when the head passes 1,024 entries: with fsync on,
                // written-but-kept buffers held up to 414 MiB of a 64 MiB `buffer` (issue 15; 102.6 MiB after).
                pending[pendingHead] = ByteBuffer()
                pendingHead += 1
                headPartial = false
            } else {
                pending[pendingHead].moveReaderIndex(forwardBy: remaining)
                headPartial = remaining > 0 || headPartial
                remaining = 0
                break
            }
        }
        if pendingHead == pending.count {
            pending.removeAll(keepingCapacity: pending.capacity <= 4096)
            pendingHead = 0
        } else if pendingHead >= 1024 {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
        guard n > 0 else { return }
        thread.withLock {
            counters.bytesWritten += UInt64(n)
            counters.writes += 1
            counters.failing = false
            apply(machine.written(n))
        }
    }

    /// Under the lock.
    private func apply(_ action: SinkQueueStateMachine.DrainAction) {
        switch action {
        case .none:
            break
        case .resume:
            registry.resume(by: token)
        case .writeGaps(let gaps):
            queue.append(machine.gapLines(gaps, names: directory))
            let total = gaps.reduce(0) { $0 + $1.dropped }
            logger.warning("\(configuration.label): writing again after dropping messages", metadata: [
                "dropped": "\(total)",
            ])
        }
    }

    private func failed(_ error: SystemError) {
        let now = ContinuousClock.now
        let isNew = episode.failed(error.description, now: now)
        thread.withLock {
            counters.writeErrors += 1
            counters.lastError = error.description
            counters.failing = true
        }
        if isNew {
            let buffered = thread.withLock { machine.buffered }
            logger.error("\(configuration.label): \(error); keeping the data queued and retrying", metadata: [
                "buffered_bytes": "\(buffered)",
            ])
        }
    }

    private func logRecovery(_ recovery: WriteErrorEpisode.Recovery) {
        logger.notice("\(configuration.label): writing again", metadata: [
            "failed_for": "\(recovery.duration.secondsText)",
            "failed_attempts": "\(recovery.failures)",
            "last_error": "\(recovery.lastError)",
        ])
    }

    private func syncNow(_ now: ContinuousClock.Instant) {
        lastSync = now
        dirty = false
        do throws(SystemError) {
            try output.sync()
        } catch {
            syncFailed(error)
        }
    }

    /// The interval's sync, beside the writer when it can be (see `BackgroundFileSync`). While the previous
    /// one still runs the data stays dirty and the next interval tries again.
    private func intervalSync(_ now: ContinuousClock.Instant) {
        guard let backgroundSync, backgroundSync.isUsable else { return syncNow(now) }
        lastSync = now
        if backgroundSync.request() { dirty = false }
    }

    /// Any thread (the writer's, or the background sync's).
    private func syncFailed(_ error: SystemError) {
        thread.withLock {
            counters.writeErrors += 1
            counters.lastError = error.description
        }
        logger.error("\(configuration.label): \(error)")
    }

    private func finishPartialLine() {
        guard headPartial, output.isOpen else { return }
        // The rest of a line whose start is already in the old file goes there too, not into the new one.
        var attempts = 0
        while headPartial && attempts < 100 {
            attempts += 1
            let before = pendingHead
            let head = pending[pendingHead]
            let result: Result<Int, SystemError> = forcedExit.whileWriting(gate) {
                head.withUnsafeReadableBytes { raw in
                    var v = iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress!), iov_len: raw.count)
                    do throws(SystemError) { return .success(try output.write(&v, count: 1)) } catch { return .failure(error) }
                }
            }
            guard case .success(let n) = result else { break }
            if n == 0 { output.waitUntilWritable(milliseconds: Self.fullWaitMilliseconds) }
            consume(n)
            if pendingHead != before { headPartial = false }
        }
        if headPartial {
            // The old file cannot take it: the rest goes to the new file rather than being lost.
            headPartial = false
        }
    }

    private func reopen(because reason: String) {
        guard case .path = output.target else { return }
        finishPartialLine()
        if output.isOpen {
            if dirty && configuration.fsync != .never { syncNow(.now) }
            output.close()
        }
        lastIdentityCheck = .now
        do throws(SystemError) {
            try output.open()
            needsReopen = false
            backgroundSync?.use(output.duplicateForSync())
            thread.withLock { counters.reopens += 1 }
            logger.info("\(configuration.label): reopened (\(reason))")
            Self.logTornLine(output, label: configuration.label, logger: logger)
            if let recovery = episode.succeeded(now: .now) { logRecovery(recovery) }
        } catch {
            needsReopen = true
            failed(error)
        }
    }

    /// A torn last line found (and terminated) when the file was opened: say so once, with its size.
    static func logTornLine(_ output: FileOutput, label: String, logger: Logger) {
        guard let bytes = output.tornLineRepaired else { return }
        logger.warning("\(label): the file ended in a torn line (\(bytes) bytes, cut by a crash?); ended it with a newline so the next message starts a line of its own", metadata: [
            "torn_bytes": "\(bytes)",
        ])
    }

    private func rotate() {
        if dirty && configuration.fsync != .never { syncNow(.now) }
        do throws(SystemError) {
            try output.rotate(keep: configuration.rotateKeep)
            needsReopen = false
            backgroundSync?.use(output.duplicateForSync())
            logger.info("\(configuration.label): rotated")
        } catch {
            needsReopen = !output.isOpen
            failed(error)
        }
        lastIdentityCheck = .now
    }

    private func abandon() {
        let lost = pending[pendingHead...].reduce(0) { $0 + $1.readableBytes }
        pending.removeAll()
        pendingHead = 0
        output.close()
        let queued = thread.withLock {
            thread.finished = true
            let bytes = queue.reduce(0) { $0 + $1.readableBytes }
            queue.removeAll()
            return bytes
        }
        if lost + queued > 0 {
            logger.error("\(configuration.label): stopped before everything was written", metadata: [
                "lost_bytes": "\(lost + queued)",
            ])
        }
    }
}

