import Foundation
import Logging
import NIOCore
import ServiceLifecycle

/// `[[sink]] type = "jetstream"`: every message published into a NATS JetStream stream, counted as delivered
/// only when the stream has acknowledged it.
///
/// ## Threads
/// - Event loops call `enqueue` (via the router): under the lock they run the buffer policy
///   (`SinkQueueStateMachine`, the same `buffer`/`on_full` contract as files) and append the messages to the
///   in-flight window (`PublishWindow`) — no encoding, no hashing, no call into the NATS library.
/// - One publisher thread of its own connects, checks or creates the stream, encodes each message, makes its
///   `Nats-Msg-Id` (`MessageIDMaker`) and publishes asynchronously, at most `max_in_flight` at a time.
/// - cnats' threads deliver acknowledgements, failures and connection changes (`JetStreamClientEvents`);
///   they only update the window under the lock and wake the publisher.
///
/// ## Guarantees
/// - At least once into the stream: a message leaves the buffer only when acknowledged; a timeout, an error
///   or a reconnect sends the unacknowledged ones again, in order, with the same message id (so a message that
///   was stored but whose ack was lost is not stored twice).
/// - Order per upstream is kept (one connection, retries go out before anything newer).
/// - `on_full = "block"` pauses the upstreams feeding the sink; `"drop"` drops and publishes a gap record.
/// - Graceful stop: publishes everything queued and waits for the acks until the daemon's `shutdown_timeout`
///   cancels it; what was not acknowledged then is logged with a count.
public final class JetStreamSink: Service, RelayEventSink, JetStreamClientEvents, @unchecked Sendable {
    enum Item: Sendable {
        case message(ReceivedMessage)
        case event(RelayEvent, number: UInt64)
        case gap(GapCounter.Gap, number: UInt64)
    }

    /// Bytes counted per message on top of its payload (subject, headers, envelope, bookkeeping).
    static let entryOverhead = 160

    let settings: SinkSettings
    let jetstream: JetStreamSinkSettings
    private let selection: UpstreamSelection
    private let directory: UpstreamDirectory
    private let registry: FlowControlRegistry
    private let environment: [String: String]
    private let logger: Logger
    private let thread = SinkWriterThread()
    private var token: ObjectIdentifier { ObjectIdentifier(self) }
    private let label: String

    // MARK: Guarded by `thread`'s lock
    private var window: PublishWindow<Item>
    private var machine: SinkQueueStateMachine
    private var connected = false
    private var connectionLost = false
    private var connectionClosed = false
    private var connectedURL: String? = nil
    private var lastError: String? = nil
    private var failing = false
    private var errors: UInt64 = 0
    private var publishedBytes: UInt64 = 0
    private var droppedAfterStop: UInt64 = 0
    private var failuresToReport: [String] = []
    private var answersSinceReport = 0
    /// cnats message pointer -> (window id, attempt) of every publish cnats may still answer.
    private var outstanding: [UInt: (id: UInt64, attempt: Int)] = [:]
    private var recordNumber: UInt64 = 0

    // MARK: Publisher thread only
    private var client: JetStreamClient? = nil
    private var streamReady = false
    private var restartConnection = false
    private var episode = WriteErrorEpisode(initialDelay: .milliseconds(100), maximumDelay: .seconds(2))
    private var encoder = EnvelopeEncoder()
    private let ids: MessageIDMaker
    private var subjects: [String: String] = [:]
    private var scratch = ByteBuffer()
    private var fallbackIDs: UInt64 = 0

    init(
        settings: SinkSettings, jetstream: JetStreamSinkSettings, directory: UpstreamDirectory,
        registry: FlowControlRegistry, environment: [String: String], logger: Logger
    ) {
        self.settings = settings
        self.jetstream = jetstream
        self.selection = UpstreamSelection(names: settings.upstreams, directory: directory)
        self.directory = directory
        self.registry = registry
        self.environment = environment
        label = "jetstream sink \(jetstream.label)"
        var logger = logger
        logger[metadataKey: "sink"] = "jetstream:\(jetstream.label)"
        self.logger = logger
        window = PublishWindow(limit: jetstream.maxInFlight)
        machine = SinkQueueStateMachine(capacity: jetstream.buffer, onFull: jetstream.onFull)
        ids = MessageIDMaker(dedupe: jetstream.dedupe)
    }

    // MARK: Event-loop side

    func enqueue(_ events: [RelayEvent]) {
        thread.withLock {
            if thread.finished {
                droppedAfterStop += UInt64(events.count { if case .message = $0 { true } else { false } })
                return
            }
            let outcome = machine.admit(events, selection: selection, events: settings.events, directory: directory,
                                        overhead: Self.entryOverhead) { event, cost in
                if case .message(let message) = event {
                    window.append(.message(message), bytes: cost)
                } else {
                    recordNumber += 1
                    window.append(.event(event, number: recordNumber), bytes: cost)
                }
            }
            thread.wakeIfSleeping()
            if outcome.pause { registry.pause(by: token, upstreams: selection) }
        }
    }

    // MARK: cnats threads

    func answered(message: UInt, stored: Bool, duplicate: Bool, error: String?) {
        thread.withLock {
            guard let (id, attempt) = outstanding.removeValue(forKey: message) else { return }
            if stored {
                if case .released(let bytes) = window.acknowledged(id, attempt: attempt, duplicate: duplicate) {
                    publishedBytes += UInt64(bytes)
                    apply(machine.written(bytes))
                }
                answersSinceReport += 1
            } else if window.failed(id, attempt: attempt) == .willRetry {
                errors += 1
                lastError = "publish not acknowledged: \(error ?? "no answer")"
                failuresToReport.append(error ?? "no acknowledgement")
            }
            thread.wakeIfSleeping()
        }
    }

    func disconnected(url: String?) {
        let server = thread.withLock {
            let server = url ?? connectedURL ?? jetstream.servers.joined(separator: ", ")
            connected = false
            connectedURL = nil
            lastError = "disconnected from \(server)"
            thread.wake()
            return server
        }
        logger.warning("\(label): disconnected from \(server); reconnecting, messages wait in the buffer")
    }

    func reconnected(url: String?) {
        thread.withLock {
            connected = true
            connectionLost = true
            connectedURL = url
            thread.wake()
        }
        logger.notice("\(label): reconnected to \(url ?? "?"); sending again what was not acknowledged")
    }

    func closed() {
        thread.withLock {
            connected = false
            connectedURL = nil
            connectionClosed = true
            thread.wake()
        }
    }

    func asyncError(_ text: String) {
        thread.withLock {
            errors += 1
            lastError = text
        }
        logger.error("\(label): \(text)")
    }

    /// Under the lock.
    private func apply(_ action: SinkQueueStateMachine.DrainAction) {
        switch action {
        case .none:
            break
        case .resume:
            registry.resume(by: token)
        case .writeGaps(let gaps):
            for gap in gaps {
                machine.admitUnconditionally(Self.entryOverhead)
                recordNumber += 1
                window.append(.gap(gap, number: recordNumber), bytes: Self.entryOverhead)
            }
            let total = gaps.reduce(0) { $0 + $1.dropped }
            logger.warning("\(label): publishing again after dropping messages", metadata: ["dropped": "\(total)"])
        }
    }

    // MARK: Service

    public func run() async throws {
        try await thread.run(name: "wsrelay-jetstream") { self.runLoop() }
    }

    func requestStop(_ request: SinkWriterThread.StopRequest) {
        thread.requestStop(request)
    }

    /// Releases a sink that never ran.
    func closeWithoutRunning() {
        thread.withLock { thread.finished = true }
    }

    var status: SinkStatus {
        var status = SinkStatus(kind: .jetstream, name: jetstream.label, format: settings.format, upstreams: settings.upstreams)
        thread.withLock {
            status.bytesWritten = publishedBytes
            status.writes = window.acknowledged
            status.bufferedBytes = machine.buffered
            status.bufferCapacity = machine.capacity
            status.dropped = machine.totalDropped + droppedAfterStop
            status.writeErrors = errors
            status.lastError = lastError
            status.failing = failing || !connected
            status.pausingUpstreams = machine.pausing
            status.jetstream = SinkStatus.JetStream(
                connectedServer: connectedURL, inFlight: window.inFlightCount, pending: window.pendingCount,
                acknowledged: window.acknowledged, duplicates: window.duplicates, retried: window.retried)
        }
        return status
    }

    // MARK: Publisher thread

    private enum Step {
        case connect
        case publish([PublishWindow<Item>.Entry])
        case finish
        case abort
    }

    func runLoop() {
        loop: while true {
            switch nextStep() {
            case .abort:
                abandon()
                break loop
            case .finish:
                client?.close()
                client = nil
                thread.withLock { thread.finished = true }
                logger.info("\(label): everything acknowledged; closed")
                break loop
            case .connect:
                connect()
            case .publish(let entries):
                publish(entries)
            }
        }
    }

    private func nextStep() -> Step {
        var report: [String] = []
        var answered = 0
        defer { reportAnswers(failures: report, answered: answered) }
        return thread.withLock {
            while true {
                if thread.stopRequest == .abort { return .abort }
                if !failuresToReport.isEmpty || answersSinceReport > 0 {
                    report = failuresToReport
                    answered = answersSinceReport
                    failuresToReport = []
                    answersSinceReport = 0
                    return .publish([])  // report outside the lock, then come back
                }
                if connectionClosed {
                    connectionClosed = false
                    restartConnection = true
                    return .connect
                }
                if connectionLost {
                    connectionLost = false
                    window.failAllInFlight()
                }
                let now = ContinuousClock.now
                // Sleep until signalled, or until the backoff lets the next attempt go when one is waiting.
                var wake: ContinuousClock.Instant? = nil
                if client == nil || !streamReady {
                    if thread.stopRequest == .drain && window.isEmpty { return .finish }
                    if episode.mayRetry(now: now) { return .connect }
                    wake = episode.retryAt
                } else if connected && window.canSend {
                    if episode.mayRetry(now: now) {
                        var entries: [PublishWindow<Item>.Entry] = []
                        while entries.count < 256, let entry = window.next() { entries.append(entry) }
                        return .publish(entries)
                    }
                    wake = episode.retryAt
                } else if thread.stopRequest == .drain && window.isEmpty {
                    return .finish
                }
                thread.sleep(until: wake)
            }
        }
    }

    /// Logs the start and the end of a failure episode once each (not once per message).
    private func reportAnswers(failures: [String], answered: Int) {
        let now = ContinuousClock.now
        if let last = failures.last {
            if episode.failed(last, now: now) {
                logger.error("\(label): publish not acknowledged: \(last); sending again in order", metadata: [
                    "failed": "\(failures.count)",
                ])
            }
        } else if answered > 0, episode.isActive, client != nil, streamReady,
            let recovery = episode.succeeded(now: now)
        {
            thread.withLock { failing = false }
            logger.notice("\(label): publishing again", metadata: [
                "failed_for": "\(recovery.duration)", "failed_attempts": "\(recovery.failures)",
                "last_error": "\(recovery.lastError)",
            ])
        }
    }

    private func connect() {
        if restartConnection {
            // Closed by the library (it gave up on the connection): start afresh.
            restartConnection = false
            client?.close()
            client = nil
            thread.withLock {
                outstanding.removeAll()
                window.failAllInFlight()
            }
        }
        if client == nil {
            streamReady = false
            do throws(JetStreamClient.Failure) {
                let created = try JetStreamClient(
                    settings: jetstream, name: "wsrelay \(jetstream.subject.template)", events: self,
                    environment: environment)
                client = created
                let url = created.connectedURL
                thread.withLock {
                    connected = true
                    connectedURL = url
                }
                logger.notice("\(label): connected to \(url ?? "?")")
            } catch {
                failed(error.description)
                return
            }
        }
        guard let client, !streamReady else { return }
        if let stream = jetstream.stream {
            do throws(JetStreamClient.Failure) {
                let outcome = try client.ensureStream(stream, defaultSubjects: [jetstream.subject.wildcard])
                logger.notice("\(label): stream \"\(stream.name)\" \(outcome == .created ? "created" : "checked")")
            } catch {
                failed(error.description)
                return
            }
        }
        streamReady = true
        thread.withLock {
            failing = false
            lastError = nil
        }
        if let recovery = episode.succeeded(now: .now) {
            logger.notice("\(label): ready again", metadata: [
                "failed_for": "\(recovery.duration)", "failed_attempts": "\(recovery.failures)",
            ])
        }
    }

    private func failed(_ description: String) {
        let isNew = episode.failed(description, now: .now)
        let buffered = thread.withLock {
            errors += 1
            lastError = description
            failing = true
            return machine.buffered
        }
        if isNew {
            logger.error("\(label): \(description); messages wait in the buffer, retrying", metadata: [
                "buffered_bytes": "\(buffered)",
            ])
        }
    }

    private func publish(_ entries: [PublishWindow<Item>.Entry]) {
        guard let client else {
            thread.withLock { for entry in entries { _ = window.failed(entry.id, attempt: entry.attempts) } }
            return
        }
        let expectStream = jetstream.stream?.name
        for entry in entries {
            let (upstream, messageID) = encode(entry.item)
            let subject = subject(for: upstream)
            let problem = scratch.withUnsafeReadableBytes { data in
                client.publish(
                    subject: subject, data: data, messageID: messageID, expectStream: expectStream,
                    register: { key in thread.withLock { outstanding[key] = (entry.id, entry.attempts) } },
                    unregister: { key in thread.withLock { _ = outstanding.removeValue(forKey: key) } })
            }
            if let problem {
                thread.withLock {
                    _ = window.failed(entry.id, attempt: entry.attempts)
                    errors += 1
                    lastError = problem
                    failuresToReport.append(problem)
                }
            }
        }
    }

    /// Encodes `item` into `scratch`; returns its upstream and message id.
    private func encode(_ item: Item) -> (String, String) {
        scratch.clear()
        switch item {
        case .message(let message):
            switch settings.format {
            case .envelope: encoder.appendEnvelope(message, to: &scratch)
            case .raw:
                if message.kind == .text {
                    var payload = message.payload
                    scratch.writeBuffer(&payload)
                } else {
                    encoder.appendRaw(message, to: &scratch)
                }
            }
            dropNewline()
            let (id, fallback) = ids.id(for: message)
            if fallback {
                fallbackIDs += 1
                if fallbackIDs == 1 || fallbackIDs.isMultiple(of: 10_000) {
                    logger.warning("\(label): dedupe json_pointer did not resolve; using the payload hash", metadata: [
                        "upstream": "\(message.upstream)", "messages": "\(fallbackIDs)",
                    ])
                }
            }
            return (message.upstream, id)
        case .event(let event, let number):
            switch event {
            case .connected(let upstream, let epoch, let at):
                encoder.appendConnected(upstream: upstream, epoch: epoch, at: at, to: &scratch)
            case .disconnected(let upstream, let epoch, let code, let reason, let at):
                encoder.appendDisconnected(upstream: upstream, epoch: epoch, code: code, reason: reason, at: at, to: &scratch)
            case .message:
                break
            }
            dropNewline()
            return (event.upstream, ids.recordID("event", upstream: event.upstream, number: number))
        case .gap(let gap, let number):
            let name = directory.name(of: gap.upstream)
            encoder.appendGap(upstream: name, dropped: gap.dropped, firstSeq: gap.firstSeq, lastSeq: gap.lastSeq,
                              at: .now(), to: &scratch)
            dropNewline()
            return (name, ids.recordID("gap", upstream: name, number: number))
        }
    }

    private func dropNewline() {
        if scratch.readableBytes > 0, scratch.getInteger(at: scratch.writerIndex - 1, as: UInt8.self) == UInt8(ascii: "\n") {
            scratch.moveWriterIndex(to: scratch.writerIndex - 1)
        }
    }

    private func subject(for upstream: String) -> String {
        if let s = subjects[upstream] { return s }
        let s = jetstream.subject.render(upstream: upstream)
        subjects[upstream] = s
        return s
    }

    private func abandon() {
        let (messages, bytes) = thread.withLock {
            thread.finished = true
            outstanding.removeAll()
            return window.abandon()
        }
        client?.close()
        client = nil
        if messages > 0 {
            logger.error("\(label): stopped before JetStream acknowledged everything", metadata: [
                "unacknowledged_messages": "\(messages)", "unacknowledged_bytes": "\(bytes)",
            ])
        }
    }
}
