import Glibc
import NIOConcurrencyHelpers
import NIOPosix

/// `fsync = "interval"` without stopping the writer: the periodic `fdatasync` runs on a thread of its own,
/// on a duplicate of the file's descriptor, while the writer thread keeps writing.
///
/// Why: a sync waits for the disk, and during a flood one sync can take as long as the interval itself.
/// With the sync on the writer thread, nothing was written meanwhile, the buffer filled and the upstream was
/// paused — a raw 4 KiB flood to a file reached 183,000 msg/s with interval syncs against 256,000 with none
/// (bench/RESULTS.md). Durability is unchanged: every sync covers everything written before it started, and
/// a new one starts each interval (if the previous one is still running, the next starts once it is done —
/// the writer skips a round rather than queueing syncs behind a slow disk, as Redis's `appendfsync everysec`
/// does). Reopen, rotation and the final stop still sync synchronously on the writer thread.
///
/// The duplicate descriptor (`use(_:)`) belongs to the sync thread, which closes it when it is replaced or
/// at the end, after any sync on it: the writer never waits to close or reopen its own descriptor. If the
/// duplicate cannot be made (out of descriptors), `request` returns false and the writer syncs itself.
final class BackgroundFileSync: Sendable {
    private struct State {
        var descriptor: CInt = -1
        /// A sync is queued or running.
        var busy = false
        var finished = false
    }

    private let pool = NIOThreadPool(numberOfThreads: 1)
    private let state = NIOLockedValueBox(State())
    private let onFailure: @Sendable (SystemError) -> Void

    /// `onFailure` runs on the sync thread with the error of a failed `fdatasync`.
    init(threadName: String, onFailure: @escaping @Sendable (SystemError) -> Void) {
        self.onFailure = onFailure
        pool._start(threadNamePrefix: threadName)
    }

    /// Syncs go to `descriptor` (a duplicate the caller made; -1: none) from now on; the previous one is
    /// closed on the sync thread after whatever sync is still running on it.
    func use(_ descriptor: CInt) {
        let previous = state.withLockedValue { state -> CInt in
            defer { state.descriptor = descriptor }
            return state.descriptor
        }
        guard previous >= 0 else { return }
        pool.submit { _ in _ = close(previous) }
    }

    /// Starts a sync of everything written so far. False when it cannot: one is still running (try again
    /// later) or there is no descriptor to sync on (sync on the writer thread instead) — see `isUsable`.
    func request() -> Bool {
        let descriptor: CInt? = state.withLockedValue { state in
            guard !state.busy, !state.finished, state.descriptor >= 0 else { return nil }
            state.busy = true
            return state.descriptor
        }
        guard let descriptor else { return false }
        pool.submit { [state, onFailure] _ in
            do throws(SystemError) {
                try FileOutput.sync(descriptor)
            } catch {
                onFailure(error)
            }
            state.withLockedValue { $0.busy = false }
        }
        return true
    }

    /// True when syncs can run here (a descriptor is in use and the thread has not finished).
    var isUsable: Bool { state.withLockedValue { !$0.finished && $0.descriptor >= 0 } }

    /// Waits for a running sync, closes the descriptor and ends the thread. `wait: false` (abort) does not
    /// wait for a sync stuck on a dead disk; the thread then ends on its own once the sync returns.
    func finish(wait: Bool) {
        let descriptor = state.withLockedValue { state -> CInt in
            state.finished = true
            defer { state.descriptor = -1 }
            return state.descriptor
        }
        if descriptor >= 0 { pool.submit { _ in _ = close(descriptor) } }
        if wait {
            try? pool.syncShutdownGracefully()
        } else {
            pool.shutdownGracefully { _ in }
        }
    }
}
