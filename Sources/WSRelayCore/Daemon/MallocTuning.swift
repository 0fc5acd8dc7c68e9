import CGlibcMalloc
import Glibc

/// Keeps the memory a flood cycles through mapped, instead of giving it back to the kernel after every buffer.
///
/// glibc's defaults suit programs that allocate and keep: a block of 128 KiB or more is an `mmap` of its own
/// (the threshold rises only as such blocks are freed, and stops rising once it is set by hand), and free
/// memory above 128 KiB at the top of a heap is given back at once (trim). The relay is a queue: event loops
/// allocate read and batch buffers (a burst of sixty-four 4 KiB messages is one 256 KiB batch) and a writer
/// thread frees them moments later, so with the defaults much of what flowed through came back as fresh
/// pages: 68,000–119,000 page faults per 200,000 × 4 KiB messages into a raw file, 0.73–1.34 CPU s. With these
/// two thresholds about 5,000 and 0.51–0.59 CPU s; median of 6 runs 301,776 → 487,581 msg/s (bench/RESULTS.md,
/// "Issue #15, session 7"). Either threshold alone is worse than none: set by hand, the other one keeps
/// glibc's initial 128 KiB (600,000 faults with only the trim threshold raised).
///
/// What it costs: memory freed after a burst stays mapped, up to `trimThreshold` per malloc arena at the top
/// of each heap (glibc keeps free chunks below the top mapped with or without this).
///
/// An operator's own malloc settings win: with `glibc.malloc.*` in `GLIBC_TUNABLES` or a `MALLOC_*`
/// variable in the environment nothing is changed.
public enum MallocTuning {
    /// Allocations from this size up get their own mapping: only large messages (the default
    /// `max_message_size` is 16 MiB).
    public static let mmapThreshold = 4 * 1024 * 1024
    /// Free memory at the top of a heap beyond this is given back. Above the buffers in flight when a file
    /// sink keeps up with a flood (measured: 10–17 MiB).
    public static let trimThreshold = 32 * 1024 * 1024

    public enum Outcome: Equatable, Sendable {
        case applied
        /// The environment names malloc settings of its own (the variable's name).
        case leftToEnvironment(String)
        case failed

        /// For the start line.
        public var summary: String {
            switch self {
            case .applied: "thresholds set (mmap \(MallocTuning.mmapThreshold >> 20) MiB, trim \(MallocTuning.trimThreshold >> 20) MiB)"
            case .leftToEnvironment(let name): "left to \(name)"
            case .failed: "glibc defaults (mallopt refused the thresholds)"
            }
        }
    }

    /// Sets both thresholds unless the environment tunes malloc itself. Call once at start.
    @discardableResult
    public static func apply(environment: [String: String]) -> Outcome {
        if let name = environmentSetting(environment) { return .leftToEnvironment(name) }
        let mmap = mallopt(wsrelay_m_mmap_threshold, Int32(mmapThreshold))
        let trim = mallopt(wsrelay_m_trim_threshold, Int32(trimThreshold))
        return mmap == 1 && trim == 1 ? .applied : .failed
    }

    /// The variable through which the environment sets malloc's thresholds or arenas, if any.
    static func environmentSetting(_ environment: [String: String]) -> String? {
        if let tunables = environment["GLIBC_TUNABLES"], tunables.contains("glibc.malloc.") { return "GLIBC_TUNABLES" }
        return environment.keys.sorted().first { $0.hasPrefix("MALLOC_") }
    }
}
