import Glibc
import NIOCore

/// The fields of one journal entry in one contiguous buffer (reused between entries).
struct JournalEntry {
    var storage: [UInt8] = []
    var ranges: [Range<Int>] = []

    mutating func reset() {
        storage.removeAll(keepingCapacity: true)
        ranges.removeAll(keepingCapacity: true)
    }

    mutating func field(_ name: String, _ value: String) {
        let start = storage.count
        storage.append(contentsOf: name.utf8)
        storage.append(UInt8(ascii: "="))
        storage.append(contentsOf: value.utf8)
        ranges.append(start..<storage.count)
    }

    mutating func field(_ name: String, bytes: ByteBuffer) {
        let start = storage.count
        storage.append(contentsOf: name.utf8)
        storage.append(UInt8(ascii: "="))
        bytes.withUnsafeReadableBytes { storage.append(contentsOf: $0) }
        ranges.append(start..<storage.count)
    }

    mutating func build(_ item: JournalSink.Item, names: UpstreamDirectory) {
        switch item {
        case .event(.message(let m)):
            if m.kind == .text {
                field("MESSAGE", bytes: m.payload)
            } else {
                field("MESSAGE", "binary message, \(m.payload.readableBytes) bytes")
                field("WSRELAY_DATA", bytes: m.payload)
            }
            field("PRIORITY", "6")
            common(upstream: m.upstream)
            field("WSRELAY_EPOCH", String(m.epoch))
            field("WSRELAY_SEQ", String(m.seq))
            field("WSRELAY_TYPE", m.kind == .text ? "text" : "binary")
            field("WSRELAY_TS", m.receivedAt.rfc3339)
        case .event(.connected(let upstream, let epoch, let at)):
            field("MESSAGE", "upstream \(upstream) connected (epoch \(epoch))")
            field("PRIORITY", "6")
            common(upstream: upstream)
            field("WSRELAY_EVENT", "connected")
            field("WSRELAY_EPOCH", String(epoch))
            field("WSRELAY_TS", at.rfc3339)
        case .event(.disconnected(let upstream, let epoch, let code, let reason, let at)):
            field("MESSAGE", "upstream \(upstream) disconnected (epoch \(epoch), code \(code)\(reason.isEmpty ? "" : ": \(reason)"))")
            field("PRIORITY", "6")
            common(upstream: upstream)
            field("WSRELAY_EVENT", "disconnected")
            field("WSRELAY_EPOCH", String(epoch))
            field("WSRELAY_CODE", String(code))
            field("WSRELAY_REASON", reason)
            field("WSRELAY_TS", at.rfc3339)
        case .gap(let gap):
            let upstream = names.name(of: gap.upstream)
            field("MESSAGE", "journal sink dropped \(gap.dropped) messages of upstream \(upstream) (seq \(gap.firstSeq)-\(gap.lastSeq))")
            field("PRIORITY", "4")
            common(upstream: upstream)
            field("WSRELAY_EVENT", "gap")
            field("WSRELAY_DROPPED", String(gap.dropped))
            field("WSRELAY_FIRST_SEQ", String(gap.firstSeq))
            field("WSRELAY_LAST_SEQ", String(gap.lastSeq))
            field("WSRELAY_TS", WallClockTime.now().rfc3339)
        }
    }

    private mutating func common(upstream: String) {
        field("SYSLOG_IDENTIFIER", "wsrelay")
        field("WSRELAY_UPSTREAM", upstream)
    }

    mutating func withIOVecs<T>(_ body: (UnsafeMutablePointer<iovec>, Int32) -> T) -> T {
        let ranges = self.ranges
        return storage.withUnsafeMutableBytes { raw in
            var vectors = ranges.map { iovec(iov_base: raw.baseAddress! + $0.lowerBound, iov_len: $0.count) }
            return vectors.withUnsafeMutableBufferPointer { body($0.baseAddress!, Int32($0.count)) }
        }
    }
}
