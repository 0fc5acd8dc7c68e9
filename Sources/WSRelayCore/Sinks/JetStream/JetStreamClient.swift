import CNats
import Glibc
import NIOConcurrencyHelpers

/// What the NATS library reports from its own threads about one connection and its publishes.
protocol JetStreamClientEvents: AnyObject, Sendable {
    func disconnected(url: String?)
    func reconnected(url: String?)
    func closed()
    func asyncError(_ text: String)
    /// An answer to `publish`: `message` is the pointer that `publish` registered (still owned by the client).
    func answered(message: UInt, stored: Bool, duplicate: Bool, error: String?)
}

/// One NATS connection with a JetStream context, used from the JetStream sink's publisher thread only: every
/// call here may block (connect, stream requests; a publish when cnats' own pending limit is reached), so none
/// of it may run on an event loop. Callbacks come on cnats' threads and go to `JetStreamClientEvents`.
final class JetStreamClient {
    private let connection: OpaquePointer
    private let context: OpaquePointer
    private let retainedBox: Unmanaged<EventsBox>
    private let ackWaitMilliseconds: Int64
    private var closed = false

    /// What cnats' callbacks reach through their closure pointer. cnats calls the closed handler (and may run
    /// an ack handler) from its own threads after `natsConnection_Destroy` has returned, so the box is never
    /// freed: it is silenced at close and then kept for the life of the process (a few dozen bytes per
    /// connection the sink ever opened; connections are reopened only when cnats gives one up).
    final class EventsBox: Sendable {
        private let target: any JetStreamClientEvents
        /// Set before the client closes its connection: what cnats reports after that is not news.
        let silenced = NIOLockedValueBox(false)
        init(_ events: any JetStreamClientEvents) { self.target = events }
        var events: any JetStreamClientEvents { silenced.withLockedValue { $0 } ? Silent.shared : target }
    }

    private final class Silent: JetStreamClientEvents {
        static let shared = Silent()
        func disconnected(url: String?) {}
        func reconnected(url: String?) {}
        func closed() {}
        func asyncError(_ text: String) {}
        func answered(message: UInt, stored: Bool, duplicate: Bool, error: String?) {}
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        var status: natsStatus
    }

    /// Connects to one of `settings.servers` (blocking up to `connectTimeout` per server) and opens a
    /// JetStream context whose publishes are answered through `events`. Secrets are read here, at every
    /// connect, so a rotated password file is picked up.
    init(
        settings: JetStreamSinkSettings, name: String, events: any JetStreamClientEvents, environment: [String: String],
        connectTimeout: Duration = .seconds(2)
    ) throws(Failure) {
        var options: OpaquePointer? = nil
        try Self.check(natsOptions_Create(&options), "cannot create NATS options")
        defer { natsOptions_Destroy(options) }
        let box = Unmanaged.passRetained(EventsBox(events))
        var connectionExists = false
        do throws(Failure) {
            try Self.configure(options!, settings: settings, name: name, box: box, environment: environment,
                               connectTimeout: connectTimeout)
            var nc: OpaquePointer? = nil
            let status = natsConnection_Connect(&nc, options)
            guard status == NATS_OK, let nc else {
                throw Failure(
                    description: "cannot connect to \(settings.servers.joined(separator: ", ")): \(Self.describe(status))",
                    status: status)
            }
            connectionExists = true
            var jsOptions = jsOptions()
            jsOptions_Init(&jsOptions)
            // Our own window bounds what is in flight; cnats' limit only guards against runaway memory, far
            // above it, so a publish never stalls the publisher thread in normal operation.
            jsOptions.PublishAsync.MaxPending = Int64(settings.maxInFlight) * 4 + 1024
            jsOptions.PublishAsync.AckHandler = { _, message, ack, error, closure in
                guard let message, let closure else { return }
                let box = Unmanaged<EventsBox>.fromOpaque(closure).takeUnretainedValue()
                let key = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(message)))
                if let ack {
                    box.events.answered(message: key, stored: true, duplicate: ack.pointee.Duplicate, error: nil)
                } else {
                    var text = "no acknowledgement"
                    if let error {
                        text = JetStreamClient.describe(error.pointee.Err, detail: error.pointee.ErrText.map { String(cString: $0) })
                        if error.pointee.ErrCode.rawValue != 0 { text += " (JetStream error \(error.pointee.ErrCode.rawValue))" }
                    }
                    box.events.answered(message: key, stored: false, duplicate: false, error: text)
                }
                natsMsg_Destroy(message)
            }
            jsOptions.PublishAsync.AckHandlerClosure = box.toOpaque()
            jsOptions.Wait = settings.ackTimeout.millisecondsClamped
            var js: OpaquePointer? = nil
            let jsStatus = natsConnection_JetStream(&js, nc, &jsOptions)
            guard jsStatus == NATS_OK, let js else {
                natsConnection_Close(nc)
                natsConnection_Destroy(nc)
                throw Failure(description: "cannot open a JetStream context: \(Self.describe(jsStatus))", status: jsStatus)
            }
            connection = nc
            context = js
            retainedBox = box
            ackWaitMilliseconds = settings.ackTimeout.millisecondsClamped
        } catch {
            if connectionExists {
                box.takeUnretainedValue().silenced.withLockedValue { $0 = true }  // not released: see EventsBox
            } else {
                // No connection came into being, so nothing can call back: the box can go (an unreachable
                // cluster is retried every few seconds; those attempts must not leak).
                box.release()
            }
            throw error
        }
    }

    deinit { close() }

    private static func configure(
        _ options: OpaquePointer, settings: JetStreamSinkSettings, name: String, box: Unmanaged<EventsBox>,
        environment: [String: String], connectTimeout: Duration
    ) throws(Failure) {
        let closure = box.toOpaque()
        var servers = settings.servers.map { strdup($0) }
        defer { servers.forEach { free($0) } }
        let serverStatus = servers.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) {
                natsOptions_SetServers(options, $0, Int32(buffer.count))
            }
        }
        try check(serverStatus, "invalid servers \(settings.servers)")
        try check(natsOptions_SetName(options, name), "cannot set the connection name")
        try check(natsOptions_SetTimeout(options, connectTimeout.millisecondsClamped), "cannot set the timeout")
        // Reconnect for ever: the sink buffers (or blocks its upstreams) while the cluster is away.
        try check(natsOptions_SetMaxReconnect(options, -1), "cannot set reconnect attempts")
        try check(natsOptions_SetReconnectWait(options, 250), "cannot set the reconnect wait")
        // No reconnect buffer (1 byte: 0 means cnats' default 8 MB). cnats would flush what it buffered while
        // reconnecting before we can send again what was in flight at the disconnect, storing newer messages
        // before older ones; instead a publish while reconnecting fails at once and the window sends it again,
        // in order, after the reconnect.
        try check(natsOptions_SetReconnectBufSize(options, 1), "cannot set the reconnect buffer")
        try check(natsOptions_SetPingInterval(options, 5_000), "cannot set the ping interval")
        try check(natsOptions_SetMaxPingsOut(options, 3), "cannot set the pings out")
        try check(natsOptions_SetDisconnectedCB(options, { nc, closure in
            guard let closure else { return }
            Unmanaged<EventsBox>.fromOpaque(closure).takeUnretainedValue().events.disconnected(url: JetStreamClient.url(of: nc))
        }, closure), "cannot set the disconnect handler")
        try check(natsOptions_SetReconnectedCB(options, { nc, closure in
            guard let closure else { return }
            Unmanaged<EventsBox>.fromOpaque(closure).takeUnretainedValue().events.reconnected(url: JetStreamClient.url(of: nc))
        }, closure), "cannot set the reconnect handler")
        try check(natsOptions_SetClosedCB(options, { _, closure in
            guard let closure else { return }
            Unmanaged<EventsBox>.fromOpaque(closure).takeUnretainedValue().events.closed()
        }, closure), "cannot set the close handler")
        try check(natsOptions_SetErrorHandler(options, { nc, _, status, closure in
            guard let closure else { return }
            var text = JetStreamClient.describe(status)
            if let nc {
                var detail: UnsafePointer<CChar>? = nil
                if natsConnection_GetLastError(nc, &detail) != NATS_OK, let detail { text = String(cString: detail) }
            }
            Unmanaged<EventsBox>.fromOpaque(closure).takeUnretainedValue().events.asyncError(text)
        }, closure), "cannot set the error handler")

        if settings.usesTLS {
            try check(natsOptions_SetSecure(options, true), "cannot enable TLS")
            // cnats checks the certificate's host name only when told which one (the config guarantees one).
            if let name = settings.verifiedHostName {
                try check(natsOptions_SetExpectedHostname(options, name), "tls.server_name \(name)")
            }
            if let ca = settings.tls?.caFile {
                try check(natsOptions_LoadCATrustedCertificates(options, ca), "tls.ca_file \(ca)")
            }
            if let cert = settings.tls?.clientCert, let key = settings.tls?.clientKey {
                try check(natsOptions_LoadCertificatesChain(options, cert, key), "tls.client_cert \(cert) / client_key \(key)")
            }
        }
        switch settings.auth {
        case .none:
            break
        case .credentialsFile(let path):
            try check(natsOptions_SetUserCredentialsFromFiles(options, path, nil), "credentials_file \(path)")
        case .nkey(let key, let seed):
            try check(natsOptions_SetNKeyFromSeed(options, key, seed), "nkey_seed_file \(seed)")
        case .userPassword(let user, let source):
            let password = try secret(source, environment: environment, what: "password")
            try check(natsOptions_SetUserInfo(options, user, password), "cannot set user and password")
        case .token(let source):
            let token = try secret(source, environment: environment, what: "token")
            try check(natsOptions_SetToken(options, token), "cannot set the token")
        }
    }

    private static func secret(_ source: SecretSource, environment: [String: String], what: String) throws(Failure) -> String {
        do throws(CredentialError) {
            return try SecretReader.read(source, environment: environment, credential: "jetstream", what: what).value
        } catch {
            throw Failure(description: "\(what): \(error)", status: NATS_INVALID_ARG)
        }
    }

    /// The URL of the server connected now, nil while disconnected.
    var connectedURL: String? { Self.url(of: connection) }

    private static func url(of nc: OpaquePointer?) -> String? {
        guard let nc else { return nil }
        var buffer = [CChar](repeating: 0, count: 256)
        guard natsConnection_GetConnectedUrl(nc, &buffer, buffer.count) == NATS_OK, buffer[0] != 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Publishes asynchronously. `register` is called with the message's key before cnats can answer for it.
    /// Returns nil when the publish was handed to cnats, or why it was not.
    func publish(subject: String, data: UnsafeRawBufferPointer, messageID: String, expectStream: String?,
                 register: (UInt) -> Void, unregister: (UInt) -> Void) -> String? {
        // cnats notices a lost connection before our disconnect callback runs; a publish in between would go
        // into its reconnect buffer (it takes one message even at size 1) and be flushed after the reconnect
        // ahead of the older messages we send again. Checking here leaves only the instant between this
        // check and cnats taking its lock.
        guard natsConnection_Status(connection) == NATS_CONN_STATUS_CONNECTED else { return "not connected" }
        var message: OpaquePointer? = nil
        let created = natsMsg_Create(&message, subject, nil, data.baseAddress?.assumingMemoryBound(to: CChar.self),
                                     Int32(data.count))
        guard created == NATS_OK, let message else { return "cannot create a message: \(Self.describe(created))" }
        let key = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(message)))
        register(key)
        var pending: OpaquePointer? = message
        var options = jsPubOptions()
        jsPubOptions_Init(&options)
        options.MaxWait = ackWaitMilliseconds
        let status = messageID.withCString { id in
            options.MsgId = id
            if let expectStream {
                return expectStream.withCString { stream in
                    options.ExpectStream = stream
                    return js_PublishMsgAsync(context, &pending, &options)
                }
            }
            return js_PublishMsgAsync(context, &pending, &options)
        }
        if status == NATS_OK { return nil }
        unregister(key)
        natsMsg_Destroy(pending)
        return Self.describe(status)
    }

    /// Creates `stream` when it does not exist; when it does, compares the keys the configuration sets and
    /// throws on any difference (an existing stream is never changed).
    func ensureStream(_ stream: JetStreamStreamSettings, defaultSubjects: [String]) throws(Failure) -> StreamOutcome {
        var info: UnsafeMutablePointer<jsStreamInfo>? = nil
        var code = jsErrCode(rawValue: 0)
        let status = js_GetStreamInfo(&info, context, stream.name, nil, &code)
        defer { if let info { jsStreamInfo_Destroy(info) } }
        if status == NATS_NOT_FOUND {
            try create(stream, subjects: stream.subjects ?? defaultSubjects)
            return .created
        }
        guard status == NATS_OK, let config = info?.pointee.Config?.pointee else {
            throw Failure(description: "cannot look up stream \"\(stream.name)\": \(Self.describe(status))", status: status)
        }
        var existing = StreamFacts()
        for i in 0..<Int(config.SubjectsLen) {
            if let s = config.Subjects?[i] { existing.subjects.append(String(cString: s)) }
        }
        existing.replicas = Int(config.Replicas)
        existing.maxAgeNanoseconds = config.MaxAge
        existing.maxBytes = config.MaxBytes
        existing.duplicateWindowNanoseconds = config.Duplicates
        if let mismatch = existing.mismatch(with: stream) {
            throw Failure(description: "stream \"\(stream.name)\" exists with a different configuration: \(mismatch); "
                + "wsrelay does not change an existing stream: change the configuration or the stream", status: NATS_MISMATCH)
        }
        return .matches
    }

    enum StreamOutcome { case created, matches }

    private func create(_ stream: JetStreamStreamSettings, subjects: [String]) throws(Failure) {
        var config = jsStreamConfig()
        jsStreamConfig_Init(&config)
        let name = strdup(stream.name)
        var subjectPointers = subjects.map { UnsafePointer<CChar>(strdup($0)) }
        defer {
            free(name)
            subjectPointers.forEach { free(UnsafeMutablePointer(mutating: $0)) }
        }
        config.Name = UnsafePointer(name)
        config.Storage = js_FileStorage
        config.Replicas = Int64(stream.replicas ?? 1)
        if let v = stream.maxAge { config.MaxAge = v.nanosecondsClamped }
        if let v = stream.maxBytes { config.MaxBytes = Int64(v) }
        config.Duplicates = (stream.duplicateWindow ?? .seconds(120)).nanosecondsClamped
        var info: UnsafeMutablePointer<jsStreamInfo>? = nil
        var code = jsErrCode(rawValue: 0)
        let status = subjectPointers.withUnsafeMutableBufferPointer { buffer -> natsStatus in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { pointer in
                config.Subjects = UnsafeMutablePointer(mutating: pointer)
                config.SubjectsLen = Int32(buffer.count)
                return js_AddStream(&info, context, &config, nil, &code)
            }
        }
        if let info { jsStreamInfo_Destroy(info) }
        guard status == NATS_OK else {
            throw Failure(description: "cannot create stream \"\(stream.name)\": \(Self.describe(status))", status: status)
        }
    }

    /// Closes the connection; cnats answers nothing after this returns.
    func close() {
        guard !closed else { return }
        closed = true
        retainedBox.takeUnretainedValue().silenced.withLockedValue { $0 = true }  // never released: see EventsBox
        jsCtx_Destroy(context)
        natsConnection_Close(connection)
        natsConnection_Destroy(connection)
    }

    // MARK: Helpers

    private static func check(_ status: natsStatus, _ what: @autoclosure () -> String) throws(Failure) {
        guard status == NATS_OK else { throw Failure(description: "\(what()): \(describe(status))", status: status) }
    }

    /// The status text plus cnats' detailed last error of this thread, when it says more.
    static func describe(_ status: natsStatus, detail: String? = nil) -> String {
        let text = String(cString: natsStatus_GetText(status))
        var detailText = detail
        if detailText == nil {
            var last = NATS_OK
            if let p = nats_GetLastError(&last), last == status { detailText = String(cString: p) }
        }
        if let detailText, !detailText.isEmpty, detailText != text { return "\(text): \(detailText)" }
        return text
    }

}

/// What the stream check compares: the existing stream's settings, for the keys the configuration can set.
struct StreamFacts: Sendable, Equatable {
    var subjects: [String] = []
    var replicas = 1
    var maxAgeNanoseconds: Int64 = 0
    var maxBytes: Int64 = -1
    var duplicateWindowNanoseconds: Int64 = 0

    /// The first configured key that differs, as "stream.KEY: the stream has X, the configuration says Y".
    func mismatch(with wanted: JetStreamStreamSettings) -> String? {
        if let subjects = wanted.subjects, Set(subjects) != Set(self.subjects) {
            return "stream.subjects: the stream has \(self.subjects), the configuration says \(subjects)"
        }
        if let replicas = wanted.replicas, replicas != max(1, self.replicas) {
            return "stream.replicas: the stream has \(max(1, self.replicas)), the configuration says \(replicas)"
        }
        if let age = wanted.maxAge, age.nanosecondsClamped != maxAgeNanoseconds {
            return "stream.max_age: the stream has \(Self.describe(nanoseconds: maxAgeNanoseconds)), the configuration says \(DurationParser.format(age))"
        }
        if let bytes = wanted.maxBytes, Int64(bytes) != maxBytes {
            return "stream.max_bytes: the stream has \(maxBytes < 0 ? "no limit" : "\(maxBytes) bytes"), the configuration says \(bytes) bytes"
        }
        if let window = wanted.duplicateWindow, window.nanosecondsClamped != duplicateWindowNanoseconds {
            return "stream.duplicate_window: the stream has \(Self.describe(nanoseconds: duplicateWindowNanoseconds)), the configuration says \(DurationParser.format(window))"
        }
        return nil
    }

    private static func describe(nanoseconds: Int64) -> String {
        nanoseconds == 0 ? "no limit" : DurationParser.format(.nanoseconds(nanoseconds))
    }
}
