/// One line a control client sent, understood.
///
/// The wire form is one JSON object per line: `{"command":"status"}`, `{"command":"pause","upstream":"market"}`,
/// `{"command":"refresh-credential","credential":"api"}`. For a person at a terminal with `socat`, the same
/// commands are also accepted as plain words (`pause market`). Anything else is answered with an error that
/// says what was expected; the connection stays open.
public enum ControlRequest: Sendable, Equatable {
    case status
    case reconnect(upstream: String)
    case pause(upstream: String)
    case resume(upstream: String)
    case reload
    case refreshCredential(name: String)
    /// `wsrelay send`: one message on an upstream's connection (`persist`: on every later connect too).
    case send(UpstreamSend)
    /// `wsrelay unsend`: remove a persisted message.
    case unsend(upstream: String, message: OutgoingMessage)

    /// The request as the JSON line a client sends.
    public var line: String {
        func object(_ command: String, _ key: String? = nil, _ value: String? = nil) -> String {
            var text = "{\"command\":\"\(command)\""
            if let key, let value { text += ",\"\(key)\":\"\(JSONStringEscaper.escaped(value))\"" }
            return text + "}"
        }
        switch self {
        case .status: return object("status")
        case .reconnect(let name): return object("reconnect", "upstream", name)
        case .pause(let name): return object("pause", "upstream", name)
        case .resume(let name): return object("resume", "upstream", name)
        case .reload: return object("reload")
        case .refreshCredential(let name): return object("refresh-credential", "credential", name)
        case .send(let request): return Self.sendLine("send", request.upstream, request.message, persist: request.persist)
        case .unsend(let name, let message): return Self.sendLine("unsend", name, message, persist: nil)
        }
    }

    private static func sendLine(_ command: String, _ upstream: String, _ message: OutgoingMessage, persist: Bool?) -> String {
        var text = "{\"command\":\"\(command)\",\"upstream\":\"\(JSONStringEscaper.escaped(upstream))\""
        switch message {
        case .text(let value): text += ",\"text\":\"\(JSONStringEscaper.escaped(value))\""
        case .binary(let bytes): text += ",\"binary\":\"\(Base64.encode(bytes))\""
        }
        if let persist { text += ",\"persist\":\(persist)" }
        return text + "}"
    }

    static let usage = #"expected one JSON object per line: {"command":"status"|"reload"}, {"command":"reconnect"|"pause"|"resume","upstream":NAME}, {"command":"refresh-credential","credential":NAME} or {"command":"send"|"unsend","upstream":NAME,"text":TEXT}"#

    /// Parses one line (without its newline). The error text is sent back to the client as is.
    public static func parse(_ line: some Collection<UInt8>) -> Result<ControlRequest, ControlRequestError> {
        let bytes = Array(line)
        let trimmed = bytes.drop { $0 == 0x20 || $0 == 0x09 }
        if trimmed.first == UInt8(ascii: "{") {
            let json: MiniJSON
            do {
                json = try MiniJSON.parse(bytes)
            } catch {
                return .failure(.init("invalid JSON: \(error); \(usage)"))
            }
            guard case .object = json else { return .failure(.init(usage)) }
            guard let command = json["command"]?.stringValue else {
                return .failure(.init("missing \"command\"; \(usage)"))
            }
            if command == "send" || command == "unsend" {
                switch UpstreamSend.parse(json, upstreamKey: "upstream") {
                case .success(let request):
                    return .success(command == "send" ? .send(request) : .unsend(upstream: request.upstream, message: request.message))
                case .failure(let problem):
                    return .failure(.init("\(command): \(problem)"))
                }
            }
            let argument = json["upstream"]?.stringValue ?? json["credential"]?.stringValue ?? json["name"]?.stringValue
            return make(command, argument)
        }
        let text = String(decoding: bytes, as: UTF8.self)
        // `send NAME TEXT...` / `unsend NAME TEXT...`: the text is the rest of the line after the name.
        let three = text.split(maxSplits: 2, omittingEmptySubsequences: true, whereSeparator: { $0 == " " || $0 == "\t" })
        if let first = three.first, first == "send" || first == "unsend" {
            guard three.count == 3 else { return .failure(.init("\(first) needs an upstream and a text: \(first) NAME TEXT")) }
            var message = String(three[2].drop { $0 == " " || $0 == "\t" })
            if message.hasSuffix("\r") { message.removeLast() }
            let upstream = String(three[1])
            return .success(first == "send" ? .send(UpstreamSend(upstream: upstream, message: .text(message)))
                                            : .unsend(upstream: upstream, message: .text(message)))
        }
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
        guard let command = words.first, words.count <= 2 else { return .failure(.init(usage)) }
        return make(String(command), words.count == 2 ? String(words[1]) : nil)
    }

    private static func make(_ command: String, _ argument: String?) -> Result<ControlRequest, ControlRequestError> {
        func named(_ build: (String) -> ControlRequest, _ what: String) -> Result<ControlRequest, ControlRequestError> {
            guard let argument, !argument.isEmpty else {
                return .failure(.init("\"\(command)\" needs \"\(what)\": {\"command\":\"\(command)\",\"\(what)\":NAME}"))
            }
            return .success(build(argument))
        }
        switch command {
        case "status": return .success(.status)
        case "reload": return .success(.reload)
        case "reconnect": return named(ControlRequest.reconnect, "upstream")
        case "pause": return named(ControlRequest.pause, "upstream")
        case "resume": return named(ControlRequest.resume, "upstream")
        case "refresh-credential": return named(ControlRequest.refreshCredential, "credential")
        default:
            let shown = String(command.prefix(40))
            return .failure(.init("unknown command \"\(JSONStringEscaper.escaped(shown))\"; \(usage)"))
        }
    }
}

public struct ControlRequestError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
