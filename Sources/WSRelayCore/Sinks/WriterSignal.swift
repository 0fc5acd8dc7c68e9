import Glibc

/// A mutex and a condition variable (monotonic clock) for the hand-off between event loops, which append to
/// a sink's queue, and the sink's writer thread, which sleeps until there is work or a deadline.
///
/// Event loops never wait on it for longer than an append; only the writer thread sleeps.
// @unchecked Sendable: no mutable Swift state; the two pointers are set once and the pthread objects are thread-safe.
final class WriterSignal: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    @inline(__always)
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Call with the lock held.
    func signal() {
        pthread_cond_signal(condition)
    }

    /// Call with the lock held. Waits until signalled or `deadline` (nil: indefinitely); spurious wake-ups are
    /// possible, so callers re-check their condition.
    func wait(until deadline: ContinuousClock.Instant?) {
        guard let deadline else {
            pthread_cond_wait(condition, mutex)
            return
        }
        let remaining = ContinuousClock.now.duration(to: deadline)
        if remaining <= .zero { return }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let (seconds, attoseconds) = remaining.components
        var sec = Int(now.tv_sec) + Int(min(seconds, 86_400))
        var nsec = Int(now.tv_nsec) + Int(attoseconds / 1_000_000_000)
        if nsec >= 1_000_000_000 { sec += 1; nsec -= 1_000_000_000 }
        var target = timespec(tv_sec: sec, tv_nsec: nsec)
        pthread_cond_timedwait(condition, mutex, &target)
    }
}
