import Glibc
import NIOConcurrencyHelpers

/// Makes "exit now" safe for files: a second SIGTERM must end the process at once, yet never between two
/// halves of a line a writer is handing to the kernel.
///
/// Each writer has a `Gate` of its own with a "writing" flag, set only for the duration of one write
/// syscall — no lock is held across the syscall, so writers never wait for each other (a FIFO or stdout
/// whose reader stopped cannot stall the other file sinks). `exitNow` closes every gate (no new write
/// starts), waits for the writes in flight to return, and exits. Writers use descriptors that never block
/// indefinitely (regular files, or non-blocking pipes and sockets; see `FileOutput`), so the wait is one
/// syscall long; `maximumWait` bounds it anyway (a hung NFS server must not make SIGTERM hang).
public final class ForcedExit: Sendable {
    /// One writer's flag. `enter` returns false once the process is exiting: the writer must not start.
    final class Gate: Sendable {
        private struct State { var writing = false; var closed = false }
        private let state = NIOLockedValueBox(State())

        /// Marks a write as started, or parks the calling thread for good if the process is exiting.
        func enter() {
            let open = state.withLockedValue { state -> Bool in
                if state.closed { return false }
                state.writing = true
                return true
            }
            if !open { Self.parkForever() }
        }

        func leave() {
            state.withLockedValue { $0.writing = false }
        }

        /// Closes the gate; true while a write that started before is still in the kernel.
        fileprivate func close() -> Bool {
            state.withLockedValue { state in
                state.closed = true
                return state.writing
            }
        }

        fileprivate var writing: Bool { state.withLockedValue { $0.writing } }

        private static func parkForever() -> Never {
            while true { sleep(3600) }
        }
    }

    private let gates = NIOLockedValueBox<[Gate]>([])
    private let maximumWait: Duration

    public init(maximumWait: Duration = .seconds(2)) {
        self.maximumWait = maximumWait
    }

    /// A gate for one writer, for as long as the process lives (a handful per configuration).
    func makeGate() -> Gate {
        let gate = Gate()
        gates.withLockedValue { $0.append(gate) }
        return gate
    }

    /// Forgets a writer's gate (its sink was removed by a reload).
    func release(_ gate: Gate) {
        gates.withLockedValue { $0.removeAll { $0 === gate } }
    }

    /// Runs one write syscall that must not be cut by a forced exit.
    func whileWriting<T>(_ gate: Gate, _ body: () throws -> T) rethrows -> T {
        gate.enter()
        defer { gate.leave() }
        return try body()
    }

    public func exitNow(code: DaemonExitCode) -> Never {
        let all = gates.withLockedValue { $0 }
        let busy = all.filter { $0.close() }
        let deadline = ContinuousClock.now + maximumWait
        for gate in busy {
            while gate.writing && ContinuousClock.now < deadline {
                usleep(1000)
            }
        }
        _exit(code.rawValue)
    }
}
