import NIOConcurrencyHelpers

/// Gives every upstream name a small integer id, so batches can say "line 17 is from upstream 2" in two
/// bytes and sinks can filter with an array lookup instead of hashing strings per message.
///
/// Ids are assigned once and never reused. Names configured at startup get 0, 1, ...; a name the router
/// first sees in `deliver` (an upstream added by a reload before the sinks are rebuilt) is added then, and
/// only sinks that take every upstream receive it.
final class UpstreamDirectory: Sendable {
    struct Snapshot: Sendable {
        var names: [String] = []
        var ids: [String: UInt16] = [:]
        /// `EnvelopeEncoder.envelopePrefix(upstream:)` of each id.
        var envelopePrefixes: [[UInt8]] = []

        func id(of name: String) -> UInt16? { ids[name] }
    }

    private let state: NIOLockedValueBox<Snapshot>

    init(names: [String]) {
        var snapshot = Snapshot()
        for name in names where snapshot.ids[name] == nil {
            Self.add(name, to: &snapshot)
        }
        state = NIOLockedValueBox(snapshot)
    }

    var snapshot: Snapshot { state.withLockedValue { $0 } }

    /// The id of `name`, adding it if it is new.
    func id(for name: String) -> (UInt16, Snapshot) {
        state.withLockedValue { snapshot in
            if let id = snapshot.ids[name] { return (id, snapshot) }
            return (Self.add(name, to: &snapshot), snapshot)
        }
    }

    func name(of id: UInt16) -> String {
        state.withLockedValue { Int(id) < $0.names.count ? $0.names[Int(id)] : "?" }
    }

    @discardableResult
    private static func add(_ name: String, to snapshot: inout Snapshot) -> UInt16 {
        let id = UInt16(clamping: snapshot.names.count)
        snapshot.names.append(name)
        snapshot.ids[name] = id
        snapshot.envelopePrefixes.append(EnvelopeEncoder.envelopePrefix(upstream: name))
        return id
    }
}

/// Which upstreams a sink (or one subscriber) takes: all of them, or a fixed set of ids.
struct UpstreamSelection: Sendable, Equatable {
    /// True: every upstream, including ones not known yet.
    private(set) var isAll: Bool
    private var members: [Bool]
    /// Bit `i` set when id `i` (< 64) is a member; for the batch fast path.
    private(set) var lowBits: UInt64

    static let all = UpstreamSelection(isAll: true, members: [], lowBits: .max)

    private init(isAll: Bool, members: [Bool], lowBits: UInt64) {
        self.isAll = isAll
        self.members = members
        self.lowBits = lowBits
    }

    init(ids: some Sequence<UInt16>) {
        var members: [Bool] = []
        var bits: UInt64 = 0
        for id in ids {
            let i = Int(id)
            if i >= members.count { members += repeatElement(false, count: i + 1 - members.count) }
            members[i] = true
            if i < 64 { bits |= 1 << UInt64(i) }
        }
        self.init(isAll: false, members: members, lowBits: bits)
    }

    /// From configured names; empty means all. Unknown names are added to the directory (they may connect later).
    init(names: [String], directory: UpstreamDirectory) {
        if names.isEmpty {
            self = .all
        } else {
            self.init(ids: names.map { directory.id(for: $0).0 })
        }
    }

    @inline(__always)
    func contains(_ id: UInt16) -> Bool {
        if isAll { return true }
        let i = Int(id)
        return i < members.count && members[i]
    }

    func intersection(_ other: UpstreamSelection) -> UpstreamSelection {
        if isAll { return other }
        if other.isAll { return self }
        return UpstreamSelection(ids: ids.filter { other.contains($0) })
    }

    /// Member ids (empty for `all`).
    var ids: [UInt16] {
        members.indices.filter { members[$0] }.map { UInt16($0) }
    }

    func names(in snapshot: UpstreamDirectory.Snapshot) -> [String] {
        if isAll { return snapshot.names }
        return ids.compactMap { Int($0) < snapshot.names.count ? snapshot.names[Int($0)] : nil }
    }
}
