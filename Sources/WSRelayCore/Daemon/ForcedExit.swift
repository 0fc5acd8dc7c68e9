import Glibc
import NIOConcurrencyHelpers

/// Makes "exit now" safe for files: a second SIGTERM must end the process at once, yet never between two
/// halves of a line. File writers hold the gate while they write; the forced exit takes it first, so the
/// process dies only between whole writes.
public final class ForcedExit: Sendable {
    private let lock = NIOLock()

    public init() {}

    /// Runs one write (or batch of writes) that must not be cut by a forced exit.
    public func whileWriting<T>(_ body: () throws -> T) rethrows -> T {
        try lock.withLock(body)
    }

    public func exitNow(code: DaemonExitCode) -> Never {
        lock.lock()
        _exit(code.rawValue)
    }
}
