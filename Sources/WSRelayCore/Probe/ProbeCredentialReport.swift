/// The credentials stage: whether a token could be obtained the way the daemon obtains it, shown only by
/// its fingerprint and expiry.
enum ProbeCredentialReport {
    static func stage(auth: AuthSettings, type: String, result: Result<IssuedToken, CredentialError>,
                      elapsed: Duration, now: WallClockTime) -> ProbeStage {
        var details = [ProbeStage.Detail("credential", "[auth.\(auth.name)] type \(type)")]
        switch result {
        case .failure(let error):
            details.append(.init("error kind", error.kind.rawValue))
            if let status = error.httpStatus { details.append(.init("endpoint status", "HTTP \(status)")) }
            if let oauth = error.oauthError { details.append(.init("oauth error", oauth)) }
            return ProbeStage(.credentials, .failed, elapsed: elapsed, "no token: \(error.message)", details: details)
        case .success(let token):
            details.append(.init("placement", describe(auth.placement)))
            var verdict = ProbeStage.Verdict.ok
            let expiry: String
            if let expiresAt = token.expiresAt {
                let seconds = expiresAt.secondsSinceEpoch - now.secondsSinceEpoch
                if seconds <= 0 {
                    verdict = .warning
                    expiry = "expired at \(expiresAt.rfc3339) (\(relative(seconds)))"
                } else {
                    expiry = "expires \(expiresAt.rfc3339) (\(relative(seconds)))"
                }
            } else {
                expiry = "expiry unknown"
            }
            return ProbeStage(.credentials, verdict, elapsed: elapsed, "token \(token.fingerprint) obtained, \(expiry)", details: details)
        }
    }

    static func describe(_ placement: TokenPlacement) -> String {
        switch placement {
        case .header(let name, let prefix): return "header \(name): \(prefix)<token>"
        case .query(let parameter): return "query parameter \(parameter)=<token>"
        case .subprotocol(let prefix): return "subprotocol \(prefix)<token>"
        case .cookie(let name): return "cookie \(name)=<token>"
        case .message: return "first message after the upgrade"
        }
    }

    /// `in 59m`, `in 2d 3h`, `5m ago`.
    static func relative(_ seconds: Int64) -> String {
        let magnitude = seconds < 0 ? -seconds : seconds
        let text: String
        if magnitude < 60 {
            text = "\(magnitude)s"
        } else if magnitude < 3600 {
            text = "\(magnitude / 60)m"
        } else if magnitude < 86400 {
            let minutes = (magnitude % 3600) / 60
            text = "\(magnitude / 3600)h" + (minutes > 0 ? " \(minutes)m" : "")
        } else {
            let hours = (magnitude % 86400) / 3600
            text = "\(magnitude / 86400)d" + (hours > 0 ? " \(hours)h" : "")
        }
        return seconds < 0 ? "\(text) ago" : "in \(text)"
    }
}
