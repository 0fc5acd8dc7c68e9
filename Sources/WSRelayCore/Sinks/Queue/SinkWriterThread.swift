import Glibc
import NIOPosix
import ServiceLifecycle

/// The skeleton every sink with a thread of its own is built on (file and stdout writers, the journal, the
/// JetStream publisher): the lock that guards the sink's queue, the hand-off between event loops (which
/// append and wake the thread) and the thread (which sleeps until there is work or a deadline), the stop
/// request, and running the thread as a `Service`'s body.
///
/// - Event loops never wait on the lock for longer than an append; only the sink's thread sleeps.
/// - Graceful shutdown asks for `.drain` (the loop writes what is queued and returns); task cancellation
///   asks for `.abort` (the loop gives up what is left). An abort overrides a drain, never the reverse.
/// - Blocking I/O never runs on an event loop or on the cooperative pool.
///
/// The sink keeps its own state beside it and guards it with `withLock`; `stopRequest`, `finished` and
/// `wakeIfSleeping`/`sleep` must be used with the lock held.
// @unchecked Sendable: the pthread objects are thread-safe; `stopRequest`, `finished` and `sleeping` are
// only touched with `mutex` held.
final class SinkWriterThread: @unchecked Sendable {
    enum StopRequest: Sendable, Equatable {
        case none, drain, abort
    }

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    // MARK: Guarded by the lock
    private(set) var stopRequest = StopRequest.none
    /// The thread has stopped (or never ran and never will): later work is refused and counted.
    var finished = false
    private var sleeping = false
    /// The thread sleeps to let small work gather (see `sleep(until:lingering:)`): only urgent work wakes it.
    private var lingering = false

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

    /// Lock held: new work was queued; wakes the thread only if it sleeps (no syscall otherwise), and while it
    /// lingers only if `urgent`.
    @inline(__always)
    func wakeIfSleeping(urgent: Bool = true) {
        if sleeping && (urgent || !lingering) { pthread_cond_signal(condition) }
    }

    /// Lock held: something the thread must look at changed even while it is busy (a connection event).
    func wake() {
        pthread_cond_signal(condition)
    }

    /// Any thread: ask the loop to stop.
    func requestStop(_ request: StopRequest) {
        withLock {
            if request == .abort || stopRequest == .none { stopRequest = request }
            pthread_cond_signal(condition)
        }
    }

    /// Lock held, on the sink's thread. Sleeps until woken or `deadline` (nil: indefinitely); spurious
    /// wake-ups are possible, so callers re-check their condition. `lingering`: only `wakeIfSleeping(urgent:
    /// true)`, `wake()` and stop requests end the sleep before `deadline`.
    func sleep(until deadline: ContinuousClock.Instant?, lingering: Bool = false) {
        sleeping = true
        self.lingering = lingering
        defer { sleeping = false; self.lingering = false }
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

    /// Runs `loop` (which returns once a stop request has been carried out) on a thread of its own until
    /// graceful shutdown (`.drain`) or task cancellation (`.abort`).
    func run(name: String, _ loop: @escaping @Sendable () -> Void) async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool._start(threadNamePrefix: name)
        let result: Result<Void, any Error>
        do {
            try await withTaskCancellationHandler {
                try await withGracefulShutdownHandler {
                    try await pool.runIfActive { loop() }
                } onGracefulShutdown: {
                    self.requestStop(.drain)
                }
            } onCancel: {
                self.requestStop(.abort)
            }
            result = .success(())
        } catch {
            result = .failure(error)
        }
        try? await pool.shutdownGracefully()
        try result.get()
    }
}
