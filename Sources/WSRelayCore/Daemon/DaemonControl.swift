import Glibc
import NIOConcurrencyHelpers

/// What the control socket's requests do to this daemon: read its status, act on one upstream, reload,
/// refresh a credential. Replies name what was done in a sentence and never carry a secret.
final class DaemonControl: ControlResponder {
    private let runtime: RelayRuntime
    private let reloader: ConfigReloader
    private let board: DaemonStatusBoard
    private let builder: StatusReportBuilder
    private let rates = NIOLockedValueBox(MessageRateMeter())

    init(runtime: RelayRuntime, reloader: ConfigReloader, board: DaemonStatusBoard, configPath: String) {
        self.runtime = runtime
        self.reloader = reloader
        self.board = board
        builder = StatusReportBuilder(configPath: configPath, startedAt: .now())
    }

    var policy: ControlPeerPolicy {
        ControlPeerPolicy(daemonUID: getuid(), allowedGIDs: runtime.current.daemon.controlAllowGIDs)
    }

    func tick() {
        // The counters alone: `driver.status` copies each upstream's whole state under its lock.
        let counters = runtime.upstreams.drivers.lazy.map { (name: $0.settings.name, messages: $0.messagesReceived) }
        let now = ContinuousClock.now
        rates.withLockedValue { $0.record(counters, at: now) }
    }

    func respond(to request: ControlRequest) async -> ControlReply {
        switch request {
        case .status:
            return ControlReply(ok: true, status: report())
        case .reconnect(let name):
            return withUpstream(name) { driver in
                driver.reconnect()
                return "\(name): reconnecting (closing epoch \(driver.status.epoch) with 1000)"
            }
        case .pause(let name):
            return withUpstream(name) { driver in
                driver.pause()
                return "\(name): paused (closed with 1000; no reconnects until resume)"
            }
        case .resume(let name):
            return withUpstream(name) { driver in
                driver.resume()
                return "\(name): resumed (connecting)"
            }
        case .reload:
            switch await reloader.reload() {
            case .applied(let plan):
                return ControlReply(ok: true, message: "configuration reloaded: \(plan.summary)", reload: .init(plan))
            case .rejected(let errors):
                return .failure("reload rejected, nothing changed: " + errors.joined(separator: "; "))
            }
        case .refreshCredential(let name):
            guard let credential = runtime.credentials.credential(named: name) else {
                return .failure("no credential named \"\(name)\"; known: \(known(runtime.credentials.names))")
            }
            do {
                let token = try await credential.forceRefresh()
                let status = credential.status()
                var message = "\(name): refreshed, token \(status.tokenFingerprint ?? token.fingerprint)"
                if let expiry = status.expiresAt { message += ", expires \(expiry.rfc3339)" }
                return .success(message)
            } catch {
                return .failure("\(name): refresh failed: \(error)")
            }
        case .send(let request):
            // The control socket's peer policy already allowed this client (root, the daemon's user or
            // control_allow_gids), the same gate as every other operator command.
            do {
                let outcome = try await runtime.sinks.outbound.send(request)
                let what = "\(request.upstream): \(request.size) bytes"
                switch outcome {
                case .sent: return .success(what + " sent" + (request.persist ? "; persisted for every later connect" : ""))
                case .persistedForNextConnect: return .success(what + " persisted; not connected now, sent at the next connect")
                }
            } catch {
                return .failure("send: \(error)")
            }
        case .unsend(let name, let message):
            do {
                guard try runtime.sinks.outbound.unsend(upstream: name, message: message) else {
                    let list = runtime.sinks.outbound.persisted[name] ?? []
                    return .failure("\(name): no such persisted message; persisted: "
                                    + (list.isEmpty ? "none" : list.map { "\"\($0.display)\"" }.joined(separator: ", ")))
                }
                return .success("\(name): removed from the persisted messages (\(runtime.sinks.outbound.persisted[name]?.count ?? 0) left)")
            } catch {
                return .failure("unsend: \(error)")
            }
        }
    }

    func report() -> StatusReport {
        let drivers = runtime.upstreams.drivers
        let now = ContinuousClock.now
        let meter = rates.withLockedValue { $0 }
        var report = builder.build(
            upstreams: drivers.map { ($0.settings, $0.status) }, credentials: runtime.credentials.snapshot(),
            sinks: runtime.sinks.snapshot(), summary: DaemonStatusBoard.line(board.snapshot), rates: meter, now: now)
        let persisted = runtime.sinks.outbound.persisted
        for index in report.upstreams.indices {
            report.upstreams[index].persistedSends = persisted[report.upstreams[index].name]?.map(\.display)
        }
        return report
    }

    private func withUpstream(_ name: String, _ act: (UpstreamDriver) -> String) -> ControlReply {
        guard let driver = runtime.upstreams.driver(named: name) else {
            return .failure("no upstream named \"\(name)\"; known: \(known(runtime.upstreams.drivers.map(\.settings.name)))")
        }
        return .success(act(driver))
    }

    private func known(_ names: [String]) -> String {
        names.isEmpty ? "none" : names.joined(separator: ", ")
    }
}
