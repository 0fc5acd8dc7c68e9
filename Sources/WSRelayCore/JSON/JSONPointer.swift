import Foundation

/// RFC 6901 JSON pointers (`/a/b/0`), used to pick a message's own id out of its payload.
struct JSONPointer: Sendable, Equatable {
    let tokens: [String]

    init?(_ text: String) {
        guard JSONPointer.problem(text) == nil else { return nil }
        tokens = text.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    /// Why `text` is not a JSON pointer, or nil. The empty pointer (the whole document) is not accepted here.
    static func problem(_ text: String) -> String? {
        guard text.hasPrefix("/") else { return "a JSON pointer starts with \"/\"" }
        var chars = Substring(text)
        while let tilde = chars.firstIndex(of: "~") {
            let next = chars.index(after: tilde)
            guard next < chars.endIndex, chars[next] == "0" || chars[next] == "1" else {
                return "invalid JSON pointer \"\(text)\": \"~\" must be followed by 0 or 1"
            }
            chars = chars[chars.index(after: next)...]
        }
        return nil
    }

    /// The value at this pointer in `json`, as text: a string as itself, a number or literal as written by the
    /// parser, an object or array as compact JSON with sorted keys. Nil when the payload is not JSON or the
    /// pointer does not resolve.
    func value(in json: [UInt8]) -> String? {
        guard var node = try? JSONSerialization.jsonObject(with: Data(json), options: [.fragmentsAllowed]) else {
            return nil
        }
        for token in tokens {
            if let object = node as? [String: Any], let child = object[token] {
                node = child
            } else if let array = node as? [Any], let index = Int(token), token == String(index), index >= 0,
                index < array.count
            {
                node = array[index]
            } else {
                return nil
            }
        }
        switch node {
        case let s as String: return s
        case let n as NSNumber: return n.stringValue
        case is NSNull: return "null"
        default:
            guard let data = try? JSONSerialization.data(withJSONObject: node, options: [.sortedKeys]) else { return nil }
            return String(decoding: data, as: UTF8.self)
        }
    }
}
