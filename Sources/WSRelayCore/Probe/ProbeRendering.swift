/// How a probe is shown: one aligned line per stage as it completes (facts indented under it), a first line
/// naming the target, a last line with the verdict; or one JSON document for scripts.
public enum ProbeRendering {
    static let verdictWidth = 4
    static let titleWidth = ProbeStage.Kind.allCases.map { $0.title.count }.max() ?? 13
    static let elapsedWidth = 8

    public static func header(_ report: ProbeReport) -> String {
        "probe \(report.target)"
    }

    /// The stage line and its details, without a trailing newline.
    public static func text(_ stage: ProbeStage) -> String {
        let verdict: String
        switch stage.verdict {
        case .ok: verdict = "ok"
        case .warning: verdict = "WARN"
        case .failed: verdict = "FAIL"
        }
        let prefix = "  " + pad(verdict, verdictWidth) + "  " + pad(stage.kind.title, titleWidth) + " "
            + padLeft(formatElapsed(stage.elapsed), elapsedWidth) + "  "
        var lines = [prefix + stage.summary]
        let indent = String(repeating: " ", count: prefix.count)
        let nameWidth = stage.details.map { $0.name.count }.max() ?? 0
        for detail in stage.details {
            lines.append(indent + pad(detail.name + ":", nameWidth + 1) + " " + detail.value)
        }
        return lines.joined(separator: "\n")
    }

    /// The whole report as text: header, every stage, conclusion.
    public static func text(_ report: ProbeReport) -> String {
        ([header(report)] + report.stages.map(text) + [report.conclusion]).joined(separator: "\n")
    }

    /// `{"target": ..., "usable": ..., "exit_status": ..., "failed_stage": ..., "conclusion": ..., "stages": [...]}`
    public static func json(_ report: ProbeReport) -> String {
        var out = "{\"target\":\(quoted(report.target)),\"usable\":\(report.usable),\"exit_status\":\(report.exitStatus)"
        out += ",\"failed_stage\":" + (report.failedStage.map { quoted($0.kind.rawValue) } ?? "null")
        out += ",\"conclusion\":\(quoted(report.conclusion)),\"stages\":["
        out += report.stages.map { stage in
            var s = "{\"stage\":\(quoted(stage.kind.rawValue)),\"title\":\(quoted(stage.kind.title))"
            s += ",\"verdict\":\(quoted(stage.verdict.rawValue)),\"elapsed_ms\":\(milliseconds(stage.elapsed))"
            s += ",\"summary\":\(quoted(stage.summary)),\"details\":["
            s += stage.details.map { "{\"name\":\(quoted($0.name)),\"value\":\(quoted($0.value))}" }.joined(separator: ",")
            return s + "]}"
        }.joined(separator: ",")
        return out + "]}"
    }

    /// `0.4ms`, `12ms`, `1.25s`: short, and precise where it matters.
    public static func formatElapsed(_ d: Duration) -> String {
        let micros = max(0, d.nanosecondsClamped / 1_000)
        if micros < 10_000 {
            let tenths = (micros + 50) / 100
            return "\(tenths / 10).\(tenths % 10)ms"
        }
        if micros < 1_000_000 { return "\((micros + 500) / 1_000)ms" }
        let hundredths = (micros + 5_000) / 10_000
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)s"
    }

    /// Milliseconds with microsecond precision, as a JSON number.
    static func milliseconds(_ d: Duration) -> String {
        let micros = max(0, d.nanosecondsClamped / 1_000)
        let fraction = String(micros % 1_000)
        return "\(micros / 1_000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }

    static func quoted(_ text: String) -> String {
        "\"" + JSONStringEscaper.escaped(text) + "\""
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    private static func padLeft(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}
