import NIOCore

extension SinkQueueStateMachine {
    /// What admitting a batch asks of the caller.
    struct BatchOutcome: Sendable, Equatable {
        /// The queue filled under `block`: pause the upstreams.
        var pause = false
        /// A run overflowed under `disconnect`: end the subscription (nothing after it was admitted).
        var disconnect = false
        /// Messages dropped (and recorded for a gap record).
        var dropped = 0
    }

    /// Admits the lines of `batch` that a sink or subscriber with `selection` and `events` takes, in order,
    /// and hands each accepted stretch to `accept` as a slice of the batch's buffer (the whole buffer when
    /// everything is taken and fits: no copy either way) with its byte count.
    ///
    /// Run-wise: each maximal run of wanted lines is admitted whole when it fits. One that does not is
    /// ended by `disconnect`, or under `drop` taken line by line: connected/disconnected records are always
    /// kept, messages that do not fit are dropped and counted per upstream, and the lines around them go on
    /// in slices. The one place that cuts batches for a queue: the file writer and every subscriber use it.
    mutating func admit(
        _ batch: EncodedBatch, selection: UpstreamSelection, events: Bool,
        accept: (_ lines: ByteBuffer, _ bytes: Int) -> Void
    ) -> BatchOutcome {
        var outcome = BatchOutcome()
        if batch.isWhollyWanted(by: selection, events: events) {
            if !batch.isEmpty { admitRun(batch, 0..<batch.entries.count, &outcome, accept) }
        } else {
            batch.forEachRun(selection: selection, events: events) { run in
                if !outcome.disconnect { admitRun(batch, run, &outcome, accept) }
            }
        }
        return outcome
    }

    private mutating func admitRun(
        _ batch: EncodedBatch, _ run: Range<Int>, _ outcome: inout BatchOutcome,
        _ accept: (ByteBuffer, Int) -> Void
    ) {
        let bytes = batch.byteCount(of: run)
        if fits(bytes) {
            if admit(bytes) == .acceptedAndPause { outcome.pause = true }
            accept(batch.slice(run), bytes)
            return
        }
        if policy == .disconnect {
            if admit(bytes) == .disconnect { outcome.disconnect = true }
            return
        }
        var acceptedFrom = -1
        var acceptedBytes = 0
        for i in run {
            let entry = batch.entries[i]
            let size = Int(entry.end) - batch.start(of: i)
            var accepted = true
            if entry.isEvent {
                admitUnconditionally(size)
            } else {
                switch admit(size) {
                case .accepted: break
                case .acceptedAndPause: outcome.pause = true
                case .dropped, .disconnect:
                    accepted = false
                    recordDrop(upstream: entry.upstream, seq: entry.seq)
                    outcome.dropped += 1
                }
            }
            if accepted {
                if acceptedFrom < 0 { acceptedFrom = i }
                acceptedBytes += size
            } else if acceptedFrom >= 0 {
                accept(batch.slice(acceptedFrom..<i), acceptedBytes)
                acceptedFrom = -1
                acceptedBytes = 0
            }
        }
        if acceptedFrom >= 0 { accept(batch.slice(acceptedFrom..<run.upperBound), acceptedBytes) }
    }

    /// The same for sinks that take events rather than lines (the journal, JetStream): a message costs its
    /// payload plus `overhead` and is admitted or dropped (and counted per upstream); connected/disconnected
    /// records cost `overhead`, are kept only with `events`, and are never dropped. `accept` gets each kept
    /// event with its cost, in order.
    mutating func admit(
        _ relayEvents: [RelayEvent], selection: UpstreamSelection, events: Bool, directory: UpstreamDirectory,
        overhead: Int, accept: (_ event: RelayEvent, _ cost: Int) -> Void
    ) -> BatchOutcome {
        var outcome = BatchOutcome()
        var lastName: String? = nil
        var wanted = false
        var id: UInt16 = 0
        for event in relayEvents {
            let name = event.upstream
            if name != lastName {
                lastName = name
                id = directory.id(for: name).0
                wanted = selection.contains(id)
            }
            guard wanted else { continue }
            switch event {
            case .message(let message):
                let cost = message.payload.readableBytes + overhead
                switch admit(cost) {
                case .accepted: break
                case .acceptedAndPause: outcome.pause = true
                case .dropped, .disconnect:
                    recordDrop(upstream: id, seq: message.seq)
                    outcome.dropped += 1
                    continue
                }
                accept(event, cost)
            case .connected, .disconnected:
                guard events else { continue }
                admitUnconditionally(overhead)
                accept(event, overhead)
            }
        }
        return outcome
    }

    /// The gap records that end a drop episode, as lines in one buffer, already counted in the queue (they
    /// are never dropped). Written where the loss happened: before anything admitted after them.
    mutating func gapLines(_ gaps: [GapCounter.Gap], names: UpstreamDirectory) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 128 * gaps.count)
        var encoder = EnvelopeEncoder()
        encoder.appendGaps(gaps, names: names, at: .now(), to: &buffer)
        admitUnconditionally(buffer.readableBytes)
        return buffer
    }
}
