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
        payload.writeStaticString(",\"pad\":\"")
        let pad = max(0, size - (payload.writerIndex - start) - 2)
        payload.writeRepeatingByte(UInt8(ascii: "x"), count: pad)
        payload.writeStaticString("\"}")
    }
}
