import Glibc

/// Decides whether log records go to the journal or to stderr.
public enum LogDestination: Sendable, Equatable {
    case journal, stderr

    /// `auto` uses the journal only when systemd connected our stderr to it: `JOURNAL_STREAM` names the
    /// device and inode of that stream, and must match what fd 2 really is (a child whose stderr was
    /// redirected inherits the variable but not the stream).
    public static func resolve(_ target: LogTarget, environment: [String: String]) -> LogDestination {
        switch target {
        case .journal: return .journal
        case .stderr: return .stderr
        case .auto: return stderrIsJournal(environment["JOURNAL_STREAM"]) ? .journal : .stderr
        }
    }

    static func stderrIsJournal(_ value: String?) -> Bool {
        guard let value else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(STDERR_FILENO, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }
}
