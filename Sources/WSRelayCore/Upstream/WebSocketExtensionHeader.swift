/// The `Sec-WebSocket-Extensions` header of a handshake, parsed per RFC 6455 §9.1:
///
///     extension-list = 1#extension
///     extension      = token *( ";" extension-param )
///     extension-param = token [ "=" (token | quoted-string) ]
///
/// A quoted value must be a token once unquoted. Several header lines are one comma-separated list. Kept
/// apart from what the parameters mean (`DeflateNegotiation`) so a syntax error and a semantic one are
/// reported as what they are.
public struct WebSocketExtensionHeader: Sendable, Equatable {
    public struct Element: Sendable, Equatable {
        public var name: String
        /// In header order; a parameter without `=` has a nil value. Duplicates are kept (the caller judges).
        public var parameters: [(name: String, value: String?)]

        public init(name: String, parameters: [(name: String, value: String?)] = []) {
            self.name = name
            self.parameters = parameters
        }

        public static func == (a: Element, b: Element) -> Bool {
            a.name == b.name && a.parameters.count == b.parameters.count
                && zip(a.parameters, b.parameters).allSatisfy { $0.name == $1.name && $0.value == $1.value }
        }
    }

    public var elements: [Element]

    /// Parses every value of the header (each may hold several comma-separated extensions). Empty list
    /// elements (`a, , b`) are skipped as RFC 9110 §5.6.1 allows; anything else malformed is an error that
    /// says what was expected where.
    public static func parse(_ values: [String]) -> Result<WebSocketExtensionHeader, ParseError> {
        var elements: [Element] = []
        for value in values {
            var scanner = Scanner(Array(value.unicodeScalars))
            while true {
                scanner.skipWhitespace()
                if scanner.atEnd { break }
                if scanner.consume(",") { continue }
                guard let name = scanner.token() else { return .failure(scanner.error("an extension name")) }
                var element = Element(name: name)
                scanner.skipWhitespace()
                while scanner.consume(";") {
                    scanner.skipWhitespace()
                    guard let parameter = scanner.token() else { return .failure(scanner.error("a parameter name after \";\"")) }
                    scanner.skipWhitespace()
                    var parameterValue: String?
                    if scanner.consume("=") {
                        scanner.skipWhitespace()
                        if scanner.peek == "\"" {
                            guard let quoted = scanner.quotedString() else {
                                return .failure(scanner.error("a closing quote for the value of \(parameter)"))
                            }
                            guard ConfigValidators.isHTTPToken(quoted) else {
                                return .failure(ParseError(message: "the quoted value of \(parameter) is not a token: \"\(quoted)\""))
                            }
                            parameterValue = quoted
                        } else {
                            guard let token = scanner.token() else { return .failure(scanner.error("a value for \(parameter)")) }
                            parameterValue = token
                        }
                        scanner.skipWhitespace()
                    }
                    element.parameters.append((parameter, parameterValue))
                }
                elements.append(element)
                scanner.skipWhitespace()
                if scanner.atEnd { break }
                guard scanner.consume(",") else { return .failure(scanner.error("\",\" or \";\"")) }
            }
        }
        return .success(WebSocketExtensionHeader(elements: elements))
    }

    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    private struct Scanner {
        let scalars: [Unicode.Scalar]
        var index = 0

        init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

        var atEnd: Bool { index >= scalars.count }
        var peek: Unicode.Scalar? { atEnd ? nil : scalars[index] }

        mutating func skipWhitespace() {
            while let c = peek, c == " " || c == "\t" { index += 1 }
        }

        mutating func consume(_ c: Unicode.Scalar) -> Bool {
            guard peek == c else { return false }
            index += 1
            return true
        }

        mutating func token() -> String? {
            let start = index
            while let c = peek, ConfigValidators.isHTTPToken(String(c)) { index += 1 }
            return index > start ? String(String.UnicodeScalarView(scalars[start..<index])) : nil
        }

        /// A quoted-string with `\` escapes, unquoted; nil when it is not closed.
        mutating func quotedString() -> String? {
            guard consume("\"") else { return nil }
            var out = String.UnicodeScalarView()
            while let c = peek {
                index += 1
                if c == "\"" { return String(out) }
                if c == "\\" {
                    guard let escaped = peek else { return nil }
                    index += 1
                    out.append(escaped)
                } else {
                    out.append(c)
                }
            }
            return nil
        }

        func error(_ expected: String) -> ParseError {
            let found = peek.map { "\"\(String($0))\" at offset \(index)" } ?? "the end"
            return ParseError(message: "expected \(expected), found \(found)")
        }
    }
}
