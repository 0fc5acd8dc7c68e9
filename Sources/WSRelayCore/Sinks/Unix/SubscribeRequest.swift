/// What a subscriber may send on the socket: one line `{"subscribe":["market","news"]}` (an empty list
/// means every upstream the socket carries), or, on a socket with `allow_send = true`,
/// `{"send":{"upstream":"market","text":"...","persist":false}}` (`"binary"`: base64 instead of `"text"`).
/// Anything else is answered with an error line and ignored.
enum SubscribeRequest: Sendable, Equatable {
    case subscribe([String])
    case send(UpstreamSend)

    /// Lines longer than this (without their newline) are refused unread.
    static let maximumLineLength = 64 * 1024

    enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case invalidJSON(String)
        case unknownRequest
        case lineTooLong
        case invalidSend(String)

        var description: String {
            switch self {
            case .invalidJSON(let detail): return "invalid JSON: \(detail)"
            case .unknownRequest:
                return "unknown request; expected {\"subscribe\":[\"upstream\",...]} or {\"send\":{\"upstream\":NAME,\"text\":...}}"
            case .invalidSend(let detail): return "invalid send: \(detail)"
            case .lineTooLong: return "line too long (more than \(SubscribeRequest.maximumLineLength) bytes); ignored"
            }
        }
    }

    /// Parses one line (without its newline; surrounding whitespace is ignored).
    static func parse<C: Collection<UInt8>>(_ line: C) -> Result<SubscribeRequest, Failure> {
        let value: MiniJSON
        do throws(MiniJSON.ParseError) {
            value = try MiniJSON.parse(line)
        } catch {
            return .failure(.invalidJSON(error.description))
        }
        if case .object(let members) = value, members.count == 1, let send = members["send"] {
            switch UpstreamSend.parse(send, upstreamKey: "upstream") {
            case .success(let request): return .success(.send(request))
            case .failure(let problem): return .failure(problem)
            }
        }
        guard case .object(let members) = value, members.count == 1, case .array(let items)? = members["subscribe"] else {
            return .failure(.unknownRequest)
        }
        var names: [String] = []
        for item in items {
            guard case .string(let name) = item else { return .failure(.unknownRequest) }
            if !names.contains(name) { names.append(name) }
        }
        return .success(.subscribe(names))
    }

    /// `{"error":"..."}\n`
    static func errorLine(_ message: String) -> [UInt8] {
        var line = Array("{\"error\":\"".utf8)
        JSONStringEscaper.append(message, to: &line)
        line.append(contentsOf: "\"}\n".utf8)
        return line
    }

    /// `{"ok":"subscribe","upstreams":["a","b"]}\n`
    static func okLine(upstreams: [String]) -> [UInt8] {
        var line = Array("{\"ok\":\"subscribe\",\"upstreams\":[".utf8)
        JSONStringEscaper.appendElements(upstreams, to: &line)
        line.append(contentsOf: "]}\n".utf8)
        return line
    }

    /// `{"ok":"send","upstream":"market","bytes":12,"sent":true,"persisted":false}\n`: `sent` false means
    /// persisted while not connected (it goes out at the next connect).
    static func sendOKLine(_ request: UpstreamSend, outcome: UpstreamSendOutcome) -> [UInt8] {
        var line = Array("{\"ok\":\"send\",\"upstream\":\"".utf8)
        JSONStringEscaper.append(request.upstream, to: &line)
        line.append(contentsOf: "\",\"bytes\":\(request.size),\"sent\":\(outcome == .sent),\"persisted\":\(request.persist)}\n".utf8)
        return line
    }

    /// `{"error":"...","send":"market"}\n`: a refused send, naming the upstream it was for.
    static func sendErrorLine(_ request: UpstreamSend, _ refusal: UpstreamSendRefusal) -> [UInt8] {
        var line = Array("{\"error\":\"".utf8)
        JSONStringEscaper.append(refusal.description, to: &line)
        line.append(contentsOf: "\",\"send\":\"".utf8)
        JSONStringEscaper.append(request.upstream, to: &line)
        line.append(contentsOf: "\"}\n".utf8)
        return line
    }
}

extension UpstreamSend {
    /// The send object shared by the subscriber line (`{"send":{...}}`) and the control request
    /// (`{"command":"send",...}`): the upstream under `upstreamKey`, exactly one of `"text"` or `"binary"`
    /// (base64), optional `"persist"` (boolean). Other keys are ignored (the control request has `command`).
    static func parse(_ value: MiniJSON, upstreamKey: String) -> Result<UpstreamSend, SubscribeRequest.Failure> {
        guard case .object(let members) = value else { return .failure(.invalidSend("expected an object")) }
        guard case .string(let upstream)? = members[upstreamKey], !upstream.isEmpty else {
            return .failure(.invalidSend("missing \"\(upstreamKey)\" (the upstream name)"))
        }
        var persist = false
        switch members["persist"] {
        case nil: break
        case .bool(let value)?: persist = value
        default: return .failure(.invalidSend("\"persist\" must be true or false"))
        }
        switch (members["text"], members["binary"]) {
        case (.string(let text)?, nil):
            return .success(UpstreamSend(upstream: upstream, message: .text(text), persist: persist))
        case (nil, .string(let encoded)?):
            guard let bytes = Base64.decode(encoded.utf8) else { return .failure(.invalidSend("\"binary\" is not valid base64")) }
            return .success(UpstreamSend(upstream: upstream, message: .binary(bytes), persist: persist))
        case (nil, nil):
            return .failure(.invalidSend("needs \"text\" (a string) or \"binary\" (base64)"))
        case (.some, .some):
            return .failure(.invalidSend("give either \"text\" or \"binary\", not both"))
        default:
            return .failure(.invalidSend("\"text\" and \"binary\" must be strings"))
        }
    }
}
