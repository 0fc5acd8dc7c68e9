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
        }
    }

    static let usage = #"expected one JSON object per line: {"command":"status"|"reload"}, {"command":"reconnect"|"pause"|"resume","upstream":NAME} or {"command":"refresh-credential","credential":NAME}"#

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
            let argument = json["upstream"]?.stringValue ?? json["credential"]?.stringValue ?? json["name"]?.stringValue
            return make(command, argument)
        }
        let words = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
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
