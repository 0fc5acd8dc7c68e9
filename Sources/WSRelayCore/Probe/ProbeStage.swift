/// One step of `wsrelay probe`, as it is shown to the operator: what was checked, how long it took, and a
/// plain verdict with the facts that back it.
public struct ProbeStage: Sendable, Equatable {
    /// The stages, in the order a connection attempt goes through them.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        case dns
        case tcp
        case proxy
        case tls
        case credentials
        case upgrade
        case message
        case ping

        /// How the stage is named in output ("the failing stage named in the last line").
        public var title: String {
            switch self {
            case .dns: return "DNS"
            case .tcp: return "TCP connect"
            case .proxy: return "proxy CONNECT"
            case .tls: return "TLS"
            case .credentials: return "credentials"
            case .upgrade: return "HTTP upgrade"
            case .message: return "first message"
            case .ping: return "ping"
            }
        }
    }

    public enum Verdict: String, Sendable, Equatable {
        /// The stage did what a working upstream needs.
        case ok
        /// Worth knowing, but the upstream is still usable (no message within --wait, TLS not verified).
        case warning
        /// The connection cannot come up past this stage.
        case failed
    }

    /// A named fact under the stage line (`issuer`, `Retry-After`, one address tried).
    public struct Detail: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public var kind: Kind
    public var verdict: Verdict
    /// Time spent in this stage alone.
    public var elapsed: Duration
    /// One line: what was found ("connected to 127.0.0.1:8080"), or why it failed.
    public var summary: String
    public var details: [Detail]

    public init(_ kind: Kind, _ verdict: Verdict, elapsed: Duration, _ summary: String, details: [Detail] = []) {
        self.kind = kind
        self.verdict = verdict
        self.elapsed = elapsed
        self.summary = summary
        self.details = details
    }

    /// The same stage with every occurrence of `secret` replaced by `replacement` (a token that the server
    /// echoed back, or that sits in a URL, must never reach the output).
    public func redacting(_ secret: String, with replacement: String) -> ProbeStage {
        guard !secret.isEmpty else { return self }
        var copy = self
        copy.summary = summary.replacingAll(secret, with: replacement)
        copy.details = details.map { Detail($0.name.replacingAll(secret, with: replacement), $0.value.replacingAll(secret, with: replacement)) }
        return copy
    }
}

extension String {
    /// Replaces every occurrence of `target` (no Foundation).
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty, contains(target) else { return self }
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
