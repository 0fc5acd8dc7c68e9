import Foundation

/// A JSON value as the few JSON lines wsrelay reads hold it: a subscriber's `{"subscribe":[...]}`, a control
/// request, and, in `wsrelay tail`, the daemon's reply and envelope lines.
///
/// Parsed by Foundation's `JSONSerialization` (RFC 8259; a top-level scalar is accepted, nesting is limited to
/// 512 levels, text that is not UTF-8 and unpaired surrogate escapes are errors), then turned into this small
/// enum so callers can pattern-match instead of casting `Any`. None of these readers is on the hot path
/// (`EnvelopeEncoder` writes the lines in the other direction).
enum MiniJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([MiniJSON])
    /// Duplicate keys: the last one wins.
    case object([String: MiniJSON])

    struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    static func parse<C: Collection<UInt8>>(_ bytes: C) throws(ParseError) -> MiniJSON {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        } catch {
            // Foundation's message names the problem and the character offset, e.g. "Unescaped control
            // character around character 6."; the NSError wrapper around it is noise for a peer.
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw ParseError(message: detail ?? "not valid JSON")
        }
        return MiniJSON(foundation: object)
    }

    /// A `JSONSerialization` result as a value. `true`/`false` arrive as boolean `NSNumber`s and stay booleans.
    init(foundation value: Any) {
        switch value {
        case let string as String: self = .string(string)
        case let array as [Any]: self = .array(array.map(MiniJSON.init(foundation:)))
        case let object as [String: Any]: self = .object(object.mapValues(MiniJSON.init(foundation:)))
        case let number as NSNumber:
            self = type(of: number) == Self.booleanType ? .bool(number.boolValue) : .number(number.doubleValue)
        default: self = .null
        }
    }

    private static let booleanType = type(of: NSNumber(value: true))

    subscript(key: String) -> MiniJSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}
