import Glibc
import Logging
import NIOConcurrencyHelpers

/// Epochs that stay unique across restarts, a crash included. A new process starts `seq` at 1 again;
/// consumers tell the runs apart by the epoch, so every epoch of a run must be greater than every epoch any
/// earlier run used — without a write per connection.
///
/// One ceiling for the whole daemon is kept in `state_dir/epochs`. A run numbers its connections from the
/// stored ceiling up; before any upstream uses an epoch beyond the ceiling, a new ceiling one `block` ahead
/// is stored durably (temporary file, fsync, rename). So one small write at the first connection and one per
/// `block` connections after that; a run that dies at any point leaves a ceiling at or above its epochs.
/// If the file cannot be written, the daemon says so once and carries on (epochs may then repeat after a
/// restart, which is what they did before).
public final class EpochReservation: Sendable {
    /// The epochs of this run are `base + 1`, `base + 2`, ... (per upstream).
    public let base: UInt64
    private let path: String?
    private let logger: Logger
    private struct State { var ceiling: UInt64; var failed = false }
    private let state: NIOLockedValueBox<State>

    static let block: UInt64 = 1 << 16
    static let fileName = "epochs"

    /// Reads the stored ceiling (none yet: 0). `stateDir == nil` keeps everything in memory.
    public init(stateDir: String?, logger: Logger) {
        self.logger = logger
        guard let stateDir else {
            path = nil
            base = 0
            state = NIOLockedValueBox(State(ceiling: 0))
            return
        }
        let path = (stateDir.hasSuffix("/") ? String(stateDir.dropLast()) : stateDir) + "/" + Self.fileName
        self.path = path
        let stored = Self.read(path)
        if stored == nil, access(path, F_OK) == 0 {
            logger.warning("\(path) does not hold a number; epochs start from 0 again")
        }
        base = stored ?? 0
        state = NIOLockedValueBox(State(ceiling: base))
    }

    /// Call before a connection uses `epoch`: stores a new ceiling when `epoch` is beyond the stored one.
    public func reserve(through epoch: UInt64) {
        guard let path else { return }
        let failure: String? = state.withLockedValue { state in
            guard epoch > state.ceiling else { return nil }
            let ceiling = epoch + Self.block
            if let error = Self.write(ceiling, to: path) {
                // Keep running on the numbers in memory; say it once per run.
                state.ceiling = ceiling
                if state.failed { return nil }
                state.failed = true
                return error
            }
            state.ceiling = ceiling
            return nil
        }
        if let failure {
            logger.warning("cannot store the epoch ceiling in \(path): \(failure); epochs may repeat after a restart")
        }
    }

    private static func read(_ path: String) -> UInt64? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[..<n], as: UTF8.self)
        return UInt64(text.prefix { !$0.isWhitespace })
    }

    /// Temporary file, fsync, rename, fsync of the directory: the new value or the old, never a torn one.
    private static func write(_ value: UInt64, to path: String) -> String? {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return SystemError.describe(errno) }
        var bytes = Array("\(value)\n".utf8)
        let written = Glibc.write(fd, &bytes, bytes.count)
        let synced = fsync(fd) == 0
        let e = errno
        close(fd)
        guard written == bytes.count, synced else {
            unlink(temporary)
            return SystemError.describe(written < 0 || !synced ? e : EIO)
        }
        guard rename(temporary, path) == 0 else {
            let e = errno
            unlink(temporary)
            return SystemError.describe(e)
        }
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        let dirFD = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
        return nil
    }
}
