import Foundation

/// One reply line on the control socket: `{"ok":true,...}` or `{"ok":false,"error":"..."}`.
public struct ControlReply: Codable, Sendable, Equatable {
    /// What a reload did, by name.
    public struct Reload: Codable, Sendable, Equatable {
        public var added: [String]
        public var removed: [String]
        public var changed: [String]
        public var unchanged: [String]
        public var credentialsChanged: [String]
        public var sinksCompared: Bool
        public var needsRestart: [String]
    }

    public var ok: Bool
    public var error: String?
    /// A sentence for a person ("market: reconnecting (epoch 7 closed with 1000)").
    public var message: String?
    public var status: StatusReport?
    public var reload: Reload?

    public static func failure(_ error: String) -> ControlReply {
        ControlReply(ok: false, error: error)
    }

    public static func success(_ message: String) -> ControlReply {
        ControlReply(ok: true, message: message)
    }

    init(ok: Bool, error: String? = nil, message: String? = nil, status: StatusReport? = nil, reload: Reload? = nil) {
        self.ok = ok
        self.error = error
        self.message = message
        self.status = status
        self.reload = reload
    }

    /// The reply as one line, newline included.
    var line: [UInt8] {
        var bytes = (try? StatusReport.encoder().encode(self)).map { Array($0) }
            ?? Array(#"{"ok":false,"error":"reply could not be encoded"}"#.utf8)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    public static func decode(_ line: some Collection<UInt8>) throws -> ControlReply {
        try StatusReport.decoder().decode(ControlReply.self, from: Data(line))
    }
}

extension ControlReply.Reload {
    init(_ plan: ReloadPlan) {
        self.init(
            added: plan.addedUpstreams, removed: plan.removedUpstreams, changed: plan.changedUpstreams,
            unchanged: plan.unchangedUpstreams, credentialsChanged: plan.changedCredentials,
            sinksCompared: plan.sinksChanged, needsRestart: plan.needsRestart)
    }
}

/// The JSON `wsrelay status --json` prints: the status report exactly as the daemon sent it.
public enum ControlReplyPrinter {
    public static func json(_ report: StatusReport) throws -> [UInt8] {
        Array(try StatusReport.encoder().encode(report))
    }
}
