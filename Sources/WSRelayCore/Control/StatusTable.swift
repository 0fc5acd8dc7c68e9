/// `wsrelay status` for a person: one block per upstream with the facts an operator reads at 3 a.m. (state,
/// since when, why it is down, when it retries), then credentials, sinks and subscribers.
///
/// Plain text, aligned columns, no colour; ages are relative ("12s ago", "in 4s") as of the report's time.
public enum StatusTable {
    public static func render(_ report: StatusReport) -> String {
        var out: [String] = []
        let d = report.daemon
        out.append("wsrelay \(d.version), pid \(d.pid), up \(age(d.uptimeSeconds)), config \(d.config)")
        out.append(d.summary)

        out.append("")
        out.append("UPSTREAMS")
        var upstreamRows = [["NAME", "STATE", "SINCE", "EPOCH", "MESSAGES", "RATE", "LAST MSG", "RTT", "CLOSE", "NEXT RETRY"]]
        for u in report.upstreams {
            upstreamRows.append([
                u.name, u.state, age(u.sinceSeconds) + " ago", "\(u.epoch)", "\(u.messages)",
                String(format1(u.messageRate)) + "/s",
                u.lastMessageAgeSeconds.map { age($0) + " ago" } ?? "-",
                u.pongRttMs.map { format1($0) + "ms" } ?? "-",
                u.lastCloseCode.map { code in "\(code)" + (u.lastCloseReason.map { $0.isEmpty ? "" : " \($0)" } ?? "") } ?? "-",
                u.nextRetryInSeconds.map { "in " + age($0) } ?? "-",
            ])
        }
        out += table(upstreamRows)
        for u in report.upstreams {
            var facts: [String] = []
            if let error = u.lastError { facts.append("last error: \(error)") }
            if let compression = u.compression {
                facts.append("compressed (\(compression))" + (u.compressionRatio.map { ", ratio \(format1($0)):1" } ?? ""))
            }
            if let credential = u.credential {
                var text = "credential \(credential): \(u.credentialState ?? "?")"
                if let fingerprint = u.tokenFingerprint { text += ", token \(fingerprint)" }
                if let expiry = u.tokenExpiresAt { text += ", expires \(expiry)" }
                facts.append(text)
            }
            if !facts.isEmpty { out.append("  \(u.name): " + facts.joined(separator: "; ")) }
            for message in u.persistedSends ?? [] { out.append("  \(u.name): persisted send: \(message)") }
        }

        if !report.credentials.isEmpty {
            out.append("")
            out.append("CREDENTIALS")
            var rows = [["NAME", "TYPE", "STATE", "TOKEN", "EXPIRES", "REFRESHES ok/failed/rejected", "LAST ERROR"]]
            for c in report.credentials {
                rows.append([c.name, c.type, c.state, c.tokenFingerprint ?? "-", c.expiresAt ?? "-",
                             "\(c.refreshesSucceeded)/\(c.refreshesFailed)/\(c.refreshesRejected)", c.lastError ?? "-"])
            }
            out += table(rows)
        }

        out.append("")
        out.append("SINKS")
        var sinkRows = [["SINK", "FORMAT", "WRITTEN", "BUFFER", "DROPPED", "ERRORS", "SUBSCRIBERS"]]
        for s in report.sinks {
            sinkRows.append([
                "\(s.kind):\(s.name)", s.format, bytes(s.bytesWritten),
                s.bufferCapacity > 0 ? "\(percent(s.bufferedBytes, of: s.bufferCapacity)) of \(bytes(UInt64(s.bufferCapacity)))" : "-",
                "\(s.dropped)", s.failing ? "FAILING: \(s.lastError ?? "?")" : "\(s.writeErrors)",
                s.kind == "unix" ? "\(s.subscribers.count)" : "-",
            ])
        }
        out += table(sinkRows)
        let subscribers = report.sinks.flatMap { sink in sink.subscribers.map { (sink, $0) } }
        if !subscribers.isEmpty {
            out.append("")
            out.append("SUBSCRIBERS")
            var rows = [["SOCKET", "PID", "UID", "CONNECTED", "QUEUE", "WRITTEN", "DROPPED", "UPSTREAMS"]]
            for (sink, s) in subscribers {
                rows.append([sink.name, "\(s.pid)", "\(s.uid)", s.connectedAt,
                             percent(s.queuedBytes, of: s.queueCapacity), bytes(s.bytesWritten), "\(s.dropped)",
                             s.upstreams.isEmpty ? "all" : s.upstreams.joined(separator: ",")])
            }
            out += table(rows)
        }
        let jetstreams = report.sinks.compactMap { sink in sink.jetstream.map { (sink, $0) } }
        if !jetstreams.isEmpty {
            out.append("")
            out.append("JETSTREAM")
            var rows = [["SINK", "SERVER", "IN FLIGHT", "PENDING", "ACKED", "DUPLICATES", "RETRIED", "LAST ERROR"]]
            for (sink, j) in jetstreams {
                rows.append([sink.name, j.connectedServer ?? "DISCONNECTED", "\(j.inFlight)", "\(j.pending)",
                             "\(j.acknowledged)", "\(j.duplicates)", "\(j.retried)", sink.lastError ?? "-"])
            }
            out += table(rows)
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// Left-aligned columns separated by two spaces.
    static func table(_ rows: [[String]]) -> [String] {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            var line = ""
            for (i, cell) in row.enumerated() {
                line += cell
                if i < row.count - 1 { line += String(repeating: " ", count: widths[i] - cell.count + 2) }
            }
            return line
        }
    }

    static func age(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        return UpstreamState.describe(.seconds(Int64(seconds.rounded())))
    }

    static func format1(_ value: Double) -> String {
        let tenths = Int64((value * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }

    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(count) B" : "\(format1(value)) \(units[unit])"
    }

    static func percent(_ part: Int, of whole: Int) -> String {
        guard whole > 0 else { return "-" }
        return "\(Int((Double(part) * 100 / Double(whole)).rounded()))%"
    }
}
