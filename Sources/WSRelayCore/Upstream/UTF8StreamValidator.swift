/// Validates UTF-8 incrementally across the fragments of a WebSocket text message.
///
/// RFC 6455 requires failing the connection (1007) on invalid text; validating as fragments arrive lets the
/// client fail fast instead of buffering a whole bad message first. This is Björn Höhrmann's DFA: one table
/// lookup per byte, no allocation, state carried between fragments.
public struct UTF8StreamValidator: Sendable {
    static let accept: UInt8 = 0
    static let reject: UInt8 = 12

    private var state: UInt8 = UTF8StreamValidator.accept

    public init() {}

    /// Feeds bytes; returns false as soon as the input cannot be valid UTF-8.

    public mutating func consume(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var s = state
        var index = 0
        let count = bytes.count
        // ASCII fast path: while in the accept state, skip runs of bytes < 0x80 eight at a time.
        while index < count {
            if s == Self.accept {
                while index + 8 <= count,
                      bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                    index += 8
                }
                if index >= count { break }
            }
            let byte = bytes[index]
            let type = Self.byteClass[Int(byte)]
            s = Self.transitions[Int(s) + Int(type)]
            if s == Self.reject {
                state = s
                return false
            }
            index += 1
        }
        state = s
        return true
    }

    /// True when the bytes so far end on a character boundary (call at the end of a message).
    public var isComplete: Bool { state == Self.accept }


    static let byteClass: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 256)
        for i in 0x80...0x8F { t[i] = 1 }
        for i in 0x90...0x9F { t[i] = 9 }
        for i in 0xA0...0xBF { t[i] = 7 }
        for i in 0xC0...0xC1 { t[i] = 8 }
        for i in 0xC2...0xDF { t[i] = 2 }
        t[0xE0] = 10
        for i in 0xE1...0xEC { t[i] = 3 }
        t[0xED] = 4
        for i in 0xEE...0xEF { t[i] = 3 }
        t[0xF0] = 11
        for i in 0xF1...0xF3 { t[i] = 6 }
        t[0xF4] = 5
        for i in 0xF5...0xFF { t[i] = 8 }
        return t
    }()


    static let transitions: [UInt8] = [
        0, 12, 24, 36, 60, 96, 84, 12, 12, 12, 48, 72, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
        12, 0, 12, 12, 12, 12, 12, 0, 12, 0, 12, 12, 12, 24, 12, 12, 12, 12, 12, 24, 12, 24, 12, 12,
        12, 12, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12, 12, 12, 12, 24, 12, 12,
        12, 12, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12, 12, 36, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12,
        12, 36, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
    ]
}
