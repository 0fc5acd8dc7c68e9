import NIOCore
import Synchronization

/// The subscribers of one Unix socket sink that live on one event loop.
///
/// A batch reaches a shard with one `execute` on its loop, whatever the number of subscribers there, and
/// the shard hands it to each of them in turn: no thread and no task per subscriber, and per-subscriber
/// state stays on its own loop. Only `count` is read from other threads.
// @unchecked Sendable: subscribers, closing and closedPromise are confined to `eventLoop`; `count` is an Atomic.
final class SubscriberShard: @unchecked Sendable {
    let eventLoop: any EventLoop
    /// Subscribers here right now; read by the router's thread to skip empty shards.
    let count = Atomic<Int>(0)

    // Event-loop only.
    private var subscribers: [SubscriberHandler] = []
    private var closing = false
    private var closedPromise: EventLoopPromise<Void>? = nil

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Returns false when the sink is shutting down (the subscriber is closed instead).
    func add(_ subscriber: SubscriberHandler) -> Bool {
        eventLoop.preconditionInEventLoop()
        if closing { return false }
        subscriber.shardIndex = subscribers.count
        subscribers.append(subscriber)
        count.store(subscribers.count, ordering: .relaxed)
        return true
    }

    func remove(_ subscriber: SubscriberHandler) {
        eventLoop.preconditionInEventLoop()
        let index = subscriber.shardIndex
        guard index >= 0, index < subscribers.count, subscribers[index] === subscriber else { return }
        let last = subscribers.removeLast()
        if index < subscribers.count {
            subscribers[index] = last
            last.shardIndex = index
        }
        subscriber.shardIndex = -1
        count.store(subscribers.count, ordering: .relaxed)
        if closing && subscribers.isEmpty { closedPromise?.succeed() }
    }

    func deliver(_ batch: EncodedBatch) {
        for subscriber in subscribers { subscriber.deliver(batch) }
    }

    /// Closes every subscriber once what is queued for it has been taken, or at `deadline`.
    func closeAll(drainUntil deadline: NIODeadline?) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        eventLoop.execute {
            self.closing = true
            self.closedPromise = promise
            if self.subscribers.isEmpty {
                promise.succeed()
                return
            }
            for subscriber in self.subscribers {
                subscriber.closeWhenDrained(force: deadline == nil)
            }
            if let deadline {
                self.eventLoop.scheduleTask(deadline: deadline) {
                    for subscriber in self.subscribers { subscriber.closeWhenDrained(force: true) }
                }
            }
        }
        return promise.futureResult
    }
}
