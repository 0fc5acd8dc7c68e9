import Glibc

/// Thousands of upstreams and subscribers need thousands of descriptors; the default soft limit (1024) is
/// far below what the hard limit usually allows, so raise it at start where permitted.
enum FileDescriptorLimit {
    static func raiseSoftLimitToHard() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
