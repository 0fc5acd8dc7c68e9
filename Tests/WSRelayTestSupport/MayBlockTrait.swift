import NIOPosix
import Testing

/// Runs a suite's tests on threads of their own instead of Swift's cooperative pool.
///
/// These tests wait for child processes and poll files and sockets with blocking calls (`waitpid`, `usleep`
/// in `eventually`, blocking reads). The cooperative pool has one thread per core: on a 2-core CI machine,
/// two such tests blocked it whole, so every async test in flight (credential timers, socket feeds) stood
/// still until they ended and ran past its safety deadline. Unit suites that read sockets blocking use it
/// too. Under this trait a test's jobs run on `BlockingTestExecutor`'s threads; task-locals (Swift Testing's
/// current test) stay, as it is the same task.
public struct MayBlock: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public init() {}

    public func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        try await withTaskExecutorPreference(BlockingTestExecutor.shared) { try await function() }
    }
}

extension Trait where Self == MayBlock {
    /// The suite's tests may block their thread (see `MayBlock`).
    public static var mayBlock: Self { MayBlock() }
}

/// A task executor over a pool of plain threads, wide enough for every test that runs at once to block one.
public final class BlockingTestExecutor: TaskExecutor, Sendable {
    public static let shared = BlockingTestExecutor()

    /// Swift Testing runs at most 2 × cores test cases at once; a test may also block a child task or two.
    private let pool: NIOThreadPool

    private init() {
        pool = NIOThreadPool(numberOfThreads: 32)
        pool.start()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        pool.submit { _ in job.runSynchronously(on: executor) }
    }
}
