import Glibc

/// Who may use the control socket: root, the daemon's own user, and members of `control_allow_gids`.
///
/// The socket file's mode (0660) is the first gate; this check is the second, so a socket directory with
/// looser permissions (or an inherited descriptor) cannot hand control to any local user. Group membership
/// counts the peer's primary group and its supplementary groups (read from /proc, as `SO_PEERCRED` carries
/// only the primary one).
struct ControlPeerPolicy: Sendable, Equatable {
    var daemonUID: UInt32
    var allowedGIDs: [UInt32]

    func allows(uid: UInt32, gid: UInt32, supplementaryGIDs: [UInt32]) -> Bool {
        if uid == 0 || uid == daemonUID { return true }
        return allowedGIDs.contains(gid) || supplementaryGIDs.contains { allowedGIDs.contains($0) }
    }

    /// The `Groups:` line of /proc/PID/status; empty when the process is gone or the line is missing.
    static func supplementaryGroups(of pid: Int32) -> [UInt32] {
        guard pid > 0, let file = fopen("/proc/\(pid)/status", "r") else { return [] }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let line {
            let text = String(cString: line)
            if text.hasPrefix("Groups:") {
                return text.dropFirst("Groups:".count).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
                    .compactMap { UInt32($0) }
            }
        }
        return []
    }
}
