/// A NATS subject with `{upstream}` standing for the upstream's name, e.g. `wsrelay.{upstream}`.
///
/// Checked once at config load: only `{upstream}` may appear in braces, and every subject it renders for the
/// configured upstreams must be a valid publish subject (dot-separated non-empty tokens of printable ASCII,
/// no `*` or `>` wildcards).
public struct SubjectTemplate: Sendable, Equatable, Hashable {
    public let template: String

    public static let variable = "{upstream}"

    /// Nil and a reason when the template is malformed.
    public static func parse(_ template: String) -> Result<SubjectTemplate, SubjectTemplateError> {
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            let after = rest[open...]
            guard after.hasPrefix(variable) else {
                let end = after.firstIndex(of: "}").map { after.index(after: $0) } ?? after.endIndex
                return .failure(.init("unknown variable \(after[..<end]) in subject template: only \(variable) is allowed"))
            }
            rest = after.dropFirst(variable.count)
        }
        if rest.contains("}") || template.replacingVariable(with: "").contains("}") {
            return .failure(.init("unbalanced \"}\" in subject template"))
        }
        let subject = SubjectTemplate(template: template)
        if let problem = Self.subjectProblem(subject.render(upstream: "x")) {
            return .failure(.init(problem))
        }
        return .success(subject)
    }

    private init(template: String) { self.template = template }

    public func render(upstream: String) -> String { template.replacingVariable(with: upstream) }

    /// The stream subject that covers every upstream: `{upstream}` as the `*` wildcard.
    public var wildcard: String { template.replacingVariable(with: "*") }

    /// Why `subject` cannot be published to, or nil.
    public static func subjectProblem(_ subject: String) -> String? {
        if subject.isEmpty { return "subject is empty" }
        for token in subject.split(separator: ".", omittingEmptySubsequences: false) {
            if token.isEmpty { return "subject \"\(subject)\" has an empty token (leading, trailing or double \".\")" }
            if token == "*" || token == ">" { return "subject \"\(subject)\" has a wildcard token; publish subjects cannot" }
            if let bad = token.unicodeScalars.first(where: { $0.value <= 0x20 || $0.value >= 0x7F }) {
                return "subject \"\(subject)\" contains \(bad.value == 0x20 ? "a space" : "character U+\(String(bad.value, radix: 16, uppercase: true))")"
            }
        }
        return nil
    }
}

public struct SubjectTemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension String {
    fileprivate func replacingVariable(with value: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let range = rest.range(of: SubjectTemplate.variable) {
            out += rest[..<range.lowerBound]
            out += value
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}
