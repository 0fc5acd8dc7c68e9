/// What a reload will change, decided from the running and the new configuration before anything is touched.
///
/// Reload is a diff, not a restart: an upstream whose settings (and whose credential's settings) compare
/// equal keeps its connection, epoch and sequence; only what changed is closed, opened or reopened. Keeping
/// the decision a pure value makes it testable without sockets and lets the daemon log exactly what it is
/// about to do before doing it.
public struct ReloadPlan: Sendable, Equatable {
    /// Upstreams to connect that were not configured before.
    public var addedUpstreams: [String] = []
    /// Upstreams to close with 1000 and forget.
    public var removedUpstreams: [String] = []
    /// Upstreams whose settings or credential changed: closed with 1000 and connected again with the new
    /// settings (their sequence numbers continue).
    public var changedUpstreams: [String] = []
    public var unchangedUpstreams: [String] = []
    /// Credentials added, removed or with changed settings; rebuilt (a changed one starts without a token).
    public var changedCredentials: [String] = []
    /// Sinks are compared one by one by `SinkSet.apply`; this says whether there is anything to compare.
    public var sinksChanged = false
    /// Settings that only take effect at the next start (the file says one thing, the process does another
    /// until then); logged as warnings so an operator is not misled.
    public var needsRestart: [String] = []

    public init(from old: Configuration, to new: Configuration) {
        let oldAuth = Dictionary(old.auth.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let newAuth = Dictionary(new.auth.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        changedCredentials = Set(oldAuth.keys).union(newAuth.keys)
            .filter { oldAuth[$0] != newAuth[$0] }
            .sorted()

        let oldUpstreams = Dictionary(old.upstreams.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let newNames = Set(new.upstreams.map(\.name))
        let changedAuth = Set(changedCredentials)
        for upstream in new.upstreams {
            guard let previous = oldUpstreams[upstream.name] else {
                addedUpstreams.append(upstream.name)
                continue
            }
            if previous != upstream || upstream.auth.map(changedAuth.contains) == true {
                changedUpstreams.append(upstream.name)
            } else {
                unchangedUpstreams.append(upstream.name)
            }
        }
        removedUpstreams = old.upstreams.map(\.name).filter { !newNames.contains($0) }
        // Sinks that take every upstream pick up added ones by themselves (`UpstreamDirectory`).
        sinksChanged = old.sinks != new.sinks

        let restartOnly: [(String, Bool)] = [
            ("daemon.pid_file", old.daemon.pidFile != new.daemon.pidFile),
            ("daemon.state_dir", old.daemon.stateDir != new.daemon.stateDir),
            ("daemon.log_target", old.daemon.logTarget != new.daemon.logTarget),
            ("daemon.control_socket", old.daemon.controlSocket != new.daemon.controlSocket),
            ("metrics.listen", old.metrics != new.metrics),
        ]
        needsRestart = restartOnly.filter(\.1).map(\.0)
    }

    /// Nothing for the runtime to do (log level and control_allow_gids are applied by the reloader itself).
    public var isEmpty: Bool {
        addedUpstreams.isEmpty && removedUpstreams.isEmpty && changedUpstreams.isEmpty && changedCredentials.isEmpty
            && !sinksChanged
    }

    /// One line for the log: "upstreams: +news, -old, ~market, 2 unchanged; credentials: ~api; sinks changed".
    public var summary: String {
        var parts: [String] = []
        let upstreamChanges = addedUpstreams.map { "+\($0)" } + removedUpstreams.map { "-\($0)" }
            + changedUpstreams.map { "~\($0)" }
        parts.append("upstreams: " + (upstreamChanges + ["\(unchangedUpstreams.count) unchanged"]).joined(separator: ", "))
        if !changedCredentials.isEmpty {
            parts.append("credentials: " + changedCredentials.map { "~\($0)" }.joined(separator: ", "))
        }
        if sinksChanged { parts.append("sinks compared") }
        return parts.joined(separator: "; ")
    }
}
