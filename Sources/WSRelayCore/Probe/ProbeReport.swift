/// The outcome of one probe: the stages that ran, in order, and what that means for the exit status.
public struct ProbeReport: Sendable, Equatable {
    /// What was probed, as shown in the first line (`feed: wss://host/path` or the URL).
    public var target: String
    public var stages: [ProbeStage]

    public init(target: String, stages: [ProbeStage] = []) {
        self.target = target
        self.stages = stages
    }

    /// The first stage that failed; the probe stops there, so it is also the last one run.
    public var failedStage: ProbeStage? { stages.first { $0.verdict == .failed } }

    public var warnings: [ProbeStage] { stages.filter { $0.verdict == .warning } }

    /// Usable: no stage failed and the upgrade completed (a report that stopped early is never usable).
    public var usable: Bool {
        failedStage == nil && stages.contains { $0.kind == .upgrade && $0.verdict != .failed }
    }

    public var exitStatus: Int32 { usable ? ProbeExitStatus.usable : ProbeExitStatus.stageFailed }

    /// The closing line: the verdict, naming the failing stage when there is one.
    public var conclusion: String {
        if let failed = failedStage {
            return "not usable: \(failed.kind.title) failed: \(failed.summary)"
        }
        if !usable {
            return "not usable: the probe ended before the HTTP upgrade"
        }
        let warnings = self.warnings
        if warnings.isEmpty { return "usable: every stage passed" }
        let names = warnings.map { $0.kind.title }.joined(separator: ", ")
        return "usable, with \(warnings.count == 1 ? "a warning" : "\(warnings.count) warnings") (\(names))"
    }
}

/// Exit statuses of `wsrelay probe` (sysexits where one fits, as the other commands use).
public enum ProbeExitStatus {
    /// Every stage passed (warnings allowed): the daemon can use this upstream.
    public static let usable: Int32 = 0
    /// A stage failed; the last line names it.
    public static let stageFailed: Int32 = 1
    /// Bad arguments: not a ws:// or wss:// URL, no upstream of that name, a bad --wait.
    public static let usage: Int32 = 64
    /// The config file needed to probe by name is missing or invalid.
    public static let config: Int32 = 78
}
