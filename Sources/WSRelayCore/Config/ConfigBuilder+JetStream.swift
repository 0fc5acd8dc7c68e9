import TOMLKit

extension ConfigBuilder {
    /// The keys of one `[[sink]] type = "jetstream"` section (the common sink keys are read by `sink`).
    func jetStreamSink(_ r: TableReader, upstreams: [String]) -> JetStreamSinkSettings? {
        let servers = r.stringArray("servers", required: true, elementExpected: "a nats:// or tls:// URL") {
            Self.natsServerProblem($0)
        }
        if let servers, servers.isEmpty { r.error("servers", "at least one server is required") }
        let subject = r.read("subject", required: true, expected: "a subject template such as \"wsrelay.{upstream}\"") {
            v -> ConfigConversion<SubjectTemplate> in
            guard let s = v.string else { return .wrongType }
            switch SubjectTemplate.parse(s) {
            case .success(let t): return .ok(t)
            case .failure(let e): return .invalid(e.description)
            }
        }
        var stream: JetStreamStreamSettings? = nil
        if let t = r.subtable("stream") { stream = jetStreamStream(t) }
        let auth = jetStreamAuth(r)
        var tls: JetStreamTLSSettings? = nil
        if let t = r.subtable("tls") {
            var s = JetStreamTLSSettings()
            s.caFile = t.absolutePath("ca_file")
            s.clientCert = t.absolutePath("client_cert")
            s.clientKey = t.absolutePath("client_key")
            requireClientCertificatePair(t)
            s.serverName = t.string("server_name")
            t.finish(allowed: ["ca_file", "client_cert", "client_key", "server_name"])
            tls = s
        }
        let maxInFlight = r.int("max_in_flight", range: 1...65_536)
        let ackTimeout = r.duration("ack_timeout")
        let buffer = r.byteSize("buffer", min: 64 << 10)
        let onFull = r.enumValue("on_full", OnFullPolicy.self)
        let dedupe = jetStreamDedupe(r)

        if let subject { checkJetStreamSubjects(r, subject: subject, stream: stream, upstreams: upstreams) }
        guard let servers, !servers.isEmpty, let subject else { return nil }
        var s = JetStreamSinkSettings(servers: servers, subject: subject)
        s.stream = stream
        s.auth = auth ?? .none
        s.tls = tls
        if let maxInFlight { s.maxInFlight = maxInFlight }
        if let ackTimeout { s.ackTimeout = ackTimeout }
        if let buffer { s.buffer = buffer }
        if let onFull { s.onFull = onFull }
        if let dedupe { s.dedupe = dedupe }
        if s.usesTLS && s.verifiedHostName == nil {
            diagnostics.error(ConfigKeyPath.child(r.keyPath("tls"), "server_name"),
                "the servers have different host names and the NATS client verifies one name for all of them: "
                    + "set tls.server_name to the name their certificates share")
        }
        return s
    }

    /// Every subject the sink publishes to must be covered by the stream's subjects, or JetStream would not
    /// store it (publishes would fail with "no responders" forever).
    private func checkJetStreamSubjects(
        _ r: TableReader, subject template: SubjectTemplate, stream: JetStreamStreamSettings?, upstreams: [String]
    ) {
        let names = upstreams.isEmpty ? upstreamInfo.compactMap(\.name) : upstreams
        let streamSubjects = stream.map { $0.subjects ?? [template.wildcard] }
        for name in names {
            let subject = template.render(upstream: name)
            if let problem = SubjectTemplate.subjectProblem(subject) {
                r.error("subject", "for upstream \"\(name)\": \(problem)")
            } else if let streamSubjects, !streamSubjects.contains(where: { NATSSubject.matches(subject, filter: $0) }) {
                let path = stream?.subjects == nil ? r.keyPath("stream") : ConfigKeyPath.child(r.keyPath("stream"), "subjects")
                diagnostics.error(path, "upstream \"\(name)\" publishes to \"\(subject)\", which the stream's subjects "
                    + "\(streamSubjects) do not cover" + (stream?.subjects == nil ? "; set stream.subjects" : ""))
            }
        }
    }

    private func jetStreamStream(_ t: TableReader) -> JetStreamStreamSettings? {
        let name = t.read("name", required: true, expected: "a stream name") { v -> ConfigConversion<String> in
            guard let s = v.string else { return .wrongType }
            let bad = s.unicodeScalars.first { $0.value <= 0x20 || $0.value >= 0x7F || ".*>/\\".unicodeScalars.contains($0) }
            if s.isEmpty || s.utf8.count > 255 || bad != nil {
                return .invalid("invalid stream name \(ConfigValueDescription.quote(s)): expected 1 to 255 printable "
                    + "ASCII characters without spaces, \".\", \"*\", \">\", \"/\" or \"\\\"")
            }
            return .ok(s)
        }
        let subjects = t.array("subjects", expected: "an array of subjects", elementExpected: "a subject") {
            v -> ConfigConversion<String> in
            guard let s = v.string else { return .wrongType }
            if let problem = NATSSubject.filterProblem(s) { return .invalid(problem) }
            return .ok(s)
        }
        if let subjects, subjects.isEmpty { t.error("subjects", "at least one subject is required when set") }
        let replicas = t.int("replicas", range: 1...5)
        let maxAge = t.duration("max_age")
        let maxBytes = t.byteSize("max_bytes", min: 1)
        let duplicateWindow = t.duration("duplicate_window")
        t.finish(allowed: ["name", "subjects", "replicas", "max_age", "max_bytes", "duplicate_window"])
        guard let name else { return nil }
        var s = JetStreamStreamSettings(name: name)
        s.subjects = subjects?.isEmpty == true ? nil : subjects
        s.replicas = replicas
        s.maxAge = maxAge
        s.maxBytes = maxBytes
        s.duplicateWindow = duplicateWindow
        return s
    }

    /// At most one of `credentials_file`, `nkey_seed_file` (with `nkey`), `user` (with a password), a token.
    private func jetStreamAuth(_ r: TableReader) -> JetStreamAuth? {
        var given: [String] = []
        var result: JetStreamAuth? = nil
        if let path = r.absolutePath("credentials_file") {
            given.append("credentials_file")
            result = .credentialsFile(path)
        }
        if r.contains("nkey_seed_file") || r.contains("nkey") {
            given.append("nkey_seed_file")
            let seed = r.absolutePath("nkey_seed_file", required: true)
            let key = r.read("nkey", required: true, expected: "the user's public NKey (56 characters starting with U)") {
                v -> ConfigConversion<String> in
                guard let s = v.string else { return .wrongType }
                guard s.utf8.count == 56, s.hasPrefix("U"), s.unicodeScalars.allSatisfy({ ("A"..."Z").contains($0) || ("2"..."7").contains($0) })
                else { return .invalid("expected the user's public NKey (56 characters of A-Z and 2-7 starting with U)") }
                return .ok(s)
            }
            if let seed, let key { result = .nkey(publicKey: key, seedFile: seed) }
        }
        if r.contains("user") || ConfigSchema.secretKeys("password").contains(where: r.contains) {
            given.append("user")
            let user = r.string("user", required: true)
            let password = secret(r, "password", required: true)
            if let user, let password { result = .userPassword(user: user, password: password) }
        }
        if ConfigSchema.secretKeys("token").contains(where: r.contains) {
            given.append("token")
            if let token = secret(r, "token", required: true) { result = .token(token) }
        }
        if given.count > 1 {
            r.error(given[1], "conflicting NATS authentication: \(given.joined(separator: " and ")) are both set; give one")
            return nil
        }
        return result
    }

    private func jetStreamDedupe(_ r: TableReader) -> JetStreamDedupe? {
        guard let value = r.raw("dedupe") else { return nil }
        let expected = "\"none\", \"payload\" or { json_pointer = \"/...\" }"
        if let s = value.string {
            switch s {
            case "none": return JetStreamDedupe.none
            case "payload": return .payload
            default:
                r.error("dedupe", "expected \(expected), found \(ConfigValueDescription.quote(s))")
                return nil
            }
        }
        guard let t = r.subtable("dedupe") else { return nil }
        let pointer = t.read("json_pointer", required: true, expected: "a JSON pointer such as \"/u\"") {
            v -> ConfigConversion<String> in
            guard let s = v.string else { return .wrongType }
            if !s.hasPrefix("/") { return .invalid("invalid JSON pointer \(ConfigValueDescription.quote(s)): it must start with \"/\"") }
            if let problem = JSONPointer.problem(s) { return .invalid(problem) }
            return .ok(s)
        }
        t.finish(allowed: ["json_pointer"])
        return pointer.map(JetStreamDedupe.jsonPointer)
    }

    /// `nats://host:port` or `tls://host:port`, without credentials (those go in their own keys).
    static func natsServerProblem(_ s: String) -> String? {
        let schemes = ["nats://", "tls://"]
        guard let scheme = schemes.first(where: { s.lowercased().hasPrefix($0) }) else {
            return "invalid server \(ConfigValueDescription.quote(s)): expected nats://HOST:PORT or tls://HOST:PORT"
        }
        let rest = s.dropFirst(scheme.count)
        if rest.contains("@") {
            return "server URL must not carry credentials: use credentials_file, nkey_seed_file, user/password or token"
        }
        if rest.isEmpty || rest.hasPrefix(":") || rest.contains("/") || rest.contains(" ") {
            return "invalid server \(ConfigValueDescription.quote(s)): expected nats://HOST:PORT or tls://HOST:PORT"
        }
        return nil
    }
}
