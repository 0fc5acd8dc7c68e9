import NIOConcurrencyHelpers

/// The events of one probe connection, from its channel handlers (event loop) to the stage runner (a task),
/// in order; the runner waits for the next one with a deadline per stage.
final class ProbeInbox<Event: Sendable>: Sendable {
    private struct State {
        var queue: [Event] = []
        var waiter: (id: UInt64, continuation: CheckedContinuation<Event?, Never>)?
        var nextID: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    func post(_ event: Event) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Event?, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter.continuation
            }
            state.queue.append(event)
            return nil
        }
        waiter?.resume(returning: event)
    }

    /// The next event, or nil when none arrives within `timeout`. One caller at a time.
    func next(timeout: Duration) async -> Event? {
        let (id, immediate) = state.withLockedValue { state -> (UInt64, Event?) in
            state.nextID &+= 1
            return (state.nextID, state.queue.isEmpty ? nil : state.queue.removeFirst())
        }
        if let immediate { return immediate }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.expire(id)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Event?, Never>) in
            let ready = state.withLockedValue { state -> Event?? in
                if !state.queue.isEmpty { return .some(state.queue.removeFirst()) }
                if state.nextID != id { return .some(nil) }  // already expired
                state.waiter = (id, continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func expire(_ id: UInt64) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Event?, Never>? in
            guard let waiter = state.waiter, waiter.id == id else {
                // Not waiting yet (the timer won the race): make the coming wait return at once.
                if state.waiter == nil, state.nextID == id { state.nextID &+= 1 }
                return nil
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume(returning: nil)
    }
}
