/// What a subscriber may send on the socket: one line `{"subscribe":["market","news"]}` (an empty list
/// means every upstream the socket carries). Anything else is answered with an error line and ignored.
enum SubscribeRequest: Sendable, Equatable {
    case subscribe([String])

    /// Lines longer than this (without their newline) are refused unread.
    static let maximumLineLength = 64 * 1024

    enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case invalidJSON(String)
        case unknownRequest
        case lineTooLong

        var description: String {
            switch self {
            case .invalidJSON(let detail): return "invalid JSON: \(detail)"
            case .unknownRequest: return "unknown request; the only request is {\"subscribe\":[\"upstream\",...]}"
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
        for (i, name) in upstreams.enumerated() {
            if i > 0 { line.append(UInt8(ascii: ",")) }
            line.append(UInt8(ascii: "\""))
            JSONStringEscaper.append(name, to: &line)
            line.append(UInt8(ascii: "\""))
        }
        line.append(contentsOf: "]}\n".utf8)
        return line
    }
}
