import NIOCore

extension SimulatorScenario {
    /// Message `number`'s payload: text `{"n":N,"pad":"xx…"}` (with `stamp`: `{"n":N,"t":T,"pad":…}`, T the
    /// CLOCK_MONOTONIC nanoseconds now) padded to `size` bytes, or binary: N as a big-endian UInt64 then 0xAB
    /// bytes up to `size`.
    func writePayload(number: Int, into payload: inout ByteBuffer) {
        if binary {
            payload.writeInteger(UInt64(number))
            if size > 8 { payload.writeRepeatingByte(0xAB, count: size - 8) }
            return
        }
        let start = payload.writerIndex
        payload.writeStaticString("{\"n\":")
        payload.writeDecimal(UInt64(number))
        if stamp {
            payload.writeStaticString(",\"t\":")
            payload.writeDecimal(NIODeadline.now().uptimeNanoseconds)
        }
        if trades {
            writeTrades(number: number, start: start, into: &payload)
            return
        }
        payload.writeStaticString(",\"pad\":\"")
        let pad = max(0, size - (payload.writerIndex - start) - 2)
        payload.writeRepeatingByte(UInt8(ascii: "x"), count: pad)
        payload.writeStaticString("\"}")
    }

    /// `,"trades":[{"p":"40123.5","q":"0.0421","s":"buy","t":1700000012345},...]}` up to `size` bytes (JSON
    /// whitespace fills the rest), the digits from a small LCG seeded by the message number.
    private func writeTrades(number: Int, start: Int, into payload: inout ByteBuffer) {
        payload.writeStaticString(",\"trades\":[")
        var state = UInt64(truncatingIfNeeded: number) &* 6364136223846793005 &+ 1442695040888963407
        func next(_ bound: UInt64) -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (state >> 33) % bound
        }
        let record = 60  // the longest record written below, with its comma
        var first = true
        while size - (payload.writerIndex - start) >= record + 2 {
            if !first { payload.writeStaticString(",") }
            first = false
            payload.writeStaticString("{\"p\":\"4")
            payload.writeDecimal(10000 + next(90000))
            payload.writeStaticString(".")
            payload.writeDecimal(next(10))
            payload.writeStaticString("\",\"q\":\"0.")
            payload.writeDecimal(1000 + next(9000))
            payload.writeStaticString(next(2) == 0 ? "\",\"s\":\"buy\",\"t\":" : "\",\"s\":\"sell\",\"t\":")
            payload.writeDecimal(1_700_000_000_000 + UInt64(number) * 10 + next(10))
            payload.writeStaticString("}")
        }
        let fill = max(0, size - (payload.writerIndex - start) - 2)
        payload.writeRepeatingByte(UInt8(ascii: " "), count: fill)
        payload.writeStaticString("]}")
    }
}
