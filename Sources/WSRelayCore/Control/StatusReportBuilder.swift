import Glibc

/// Turns the live snapshots (upstream states, credential and sink statuses, the STATUS= board) into a
/// `StatusReport`. Instants of the monotonic clock become wall-clock times for the reader.
struct StatusReportBuilder: Sendable {
    let configPath: String
    let startedAt: WallClockTime

    func build(
        upstreams: [(settings: UpstreamSettings, state: UpstreamState)], credentials: [CredentialStatus],
        sinks: [SinkStatus], summary: String, rates: MessageRateMeter,
        now: ContinuousClock.Instant = .now, wallNow: WallClockTime = .now()
    ) -> StatusReport {
        func wall(_ instant: ContinuousClock.Instant) -> WallClockTime {
            WallClockTime(microsecondsSinceEpoch: wallNow.microsecondsSinceEpoch - (now - instant).microseconds)
        }
        func seconds(_ duration: Duration) -> Double { Double(duration.nanosecondsClamped) / 1e9 }
        func wallSeconds(from a: WallClockTime, to b: WallClockTime) -> Double {
            Double(b.microsecondsSinceEpoch - a.microsecondsSinceEpoch) / 1e6
        }
        let credentialsByName = Dictionary(credentials.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })

        let upstreamReports = upstreams.map { settings, state in
            let credential = settings.auth.flatMap { credentialsByName[$0] }
            return StatusReport.Upstream(
                name: state.name,
                url: Self.displayURL(settings.url),
                state: state.phase.rawValue,
                since: wall(state.since).rfc3339,
                sinceSeconds: seconds(now - state.since),
                epoch: state.epoch,
                attempt: state.attempt,
                messages: state.messages,
                bytes: state.bytes,
                messageRate: rates.rate(of: state.name, messages: state.messages, at: now),
                lastMessageAt: state.lastMessageAt.map { wall($0).rfc3339 },
                lastMessageAgeSeconds: state.lastMessageAt.map { seconds(now - $0) },
                lastCloseCode: state.lastCloseCode,
                lastCloseReason: state.lastCloseReason,
                lastError: state.lastError,
                nextRetryAt: state.nextAttempt.map { wall($0).rfc3339 },
                nextRetryInSeconds: state.nextAttempt.map { max(0, seconds($0 - now)) },
                pongRttMs: state.lastPongRTT.map { Double($0.nanosecondsClamped) / 1e6 },
                connects: state.connects,
                disconnects: state.disconnects,
                paused: state.phase == .paused,
                credential: settings.auth,
                credentialState: credential?.state,
                tokenFingerprint: credential?.tokenFingerprint,
                tokenExpiresAt: credential?.expiresAt?.rfc3339,
                compression: state.compression?.description,
                compressionRatio: state.compressionStats?.ratio)
        }
        let credentialReports = credentials.map { c in
            StatusReport.Credential(
                name: c.name, type: c.type, state: c.state, tokenFingerprint: c.tokenFingerprint,
                expiresAt: c.expiresAt?.rfc3339, lastRefreshAt: c.lastRefresh?.rfc3339,
                nextRetryAt: c.nextRetry?.rfc3339, refreshesSucceeded: c.refreshes.succeeded,
                refreshesFailed: c.refreshes.failed, refreshesRejected: c.refreshes.rejected, lastError: c.lastError)
        }
        let sinkReports = sinks.map { s in
            StatusReport.Sink(
                kind: s.kind.rawValue, name: s.name, format: s.format.rawValue, upstreams: s.upstreams,
                bytesWritten: s.bytesWritten, bufferedBytes: s.bufferedBytes, bufferCapacity: s.bufferCapacity,
                dropped: s.dropped, writeErrors: s.writeErrors, lastError: s.lastError, failing: s.failing,
                pausingUpstreams: s.pausingUpstreams, slowDisconnects: s.slowDisconnects,
                subscribers: s.subscribers.map { sub in
                    StatusReport.Subscriber(
                        pid: sub.pid, uid: sub.uid, gid: sub.gid, connectedAt: sub.connectedAt.rfc3339,
                        queuedBytes: sub.queuedBytes, queueCapacity: sub.queueCapacity,
                        bytesWritten: sub.bytesWritten, dropped: sub.dropped, upstreams: sub.upstreams)
                },
                jetstream: s.jetstream.map { j in
                    StatusReport.JetStream(
                        connectedServer: j.connectedServer, inFlight: j.inFlight, pending: j.pending,
                        acknowledged: j.acknowledged, duplicates: j.duplicates, retried: j.retried)
                })
        }
        return StatusReport(
            daemon: .init(
                pid: getpid(), version: WSRelayVersion.string, startedAt: startedAt.rfc3339,
                uptimeSeconds: wallSeconds(from: startedAt, to: wallNow), config: configPath, summary: summary,
                generatedAt: wallNow.rfc3339),
            upstreams: upstreamReports, credentials: credentialReports, sinks: sinkReports)
    }

    /// The URL without its query string, which may carry a secret someone put into the config.
    static func displayURL(_ url: WebSocketURL) -> String {
        var shown = url
        if let query = shown.target.firstIndex(of: "?") {
            shown.target = String(shown.target[..<query]) + "?…"
        }
        return shown.description
    }
}
