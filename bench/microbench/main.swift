// wsrelay-microbench: the hand-written hot-path helpers against the libraries that could replace them, in
// process, release build. Run with bench/micro (prints a Markdown table for bench/RESULTS.md).
//
// What is measured is exactly what the envelope encoder does once per message: escape a text payload into
// a JSON string in reserved memory, or base64 a binary payload into reserved memory. Each case runs the same
// payload in a loop; the figure is nanoseconds per message (median of several rounds) and the throughput, or,
// with bench/micro --instructions, instructions per message counted by callgrind (repeatable on a busy machine).
import ExtrasBase64
import Foundation
import NIOCore
import WSRelayCore

struct Case {
    let name: String
    let run: (Int) -> Int  // iterations -> checksum (keeps the optimizer honest)
}

func measure(_ c: Case, payloadBytes: Int, rounds: Int = 7, minimumSeconds: Double = 0.3) -> (nsPerOp: Double, mbps: Double) {
    // Calibrate the iteration count to about minimumSeconds per round.
    var iterations = 1000
    while true {
        let start = DispatchTime.now().uptimeNanoseconds
        _ = c.run(iterations)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if seconds >= minimumSeconds / 4 || iterations >= 1 << 28 {
            iterations = max(1000, Int(Double(iterations) * minimumSeconds / max(seconds, 1e-9)))
            break
        }
        iterations *= 4
    }
    var samples: [Double] = []
    var checksum = 0
    for _ in 0..<rounds {
        let start = DispatchTime.now().uptimeNanoseconds
        checksum &+= c.run(iterations)
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations))
    }
    if checksum == 42 { print("") }
    let ns = samples.sorted()[rounds / 2]
    return (ns, Double(payloadBytes) / ns * 1e9 / 1e6)
}

func payload(text size: Int) -> [UInt8] {
    // Typical market-data JSON: ASCII with quotes (escaped) and digits.
    let unit = Array(#"{"p":"12345.67","q":"0.0042","s":"BTC-USD","t":1700000000123},"#.utf8)
    return Array((0..<size).map { unit[$0 % unit.count] })
}

func payload(binary size: Int) -> [UInt8] {
    var x: UInt32 = 0x1234_5678
    return (0..<size).map { _ in x = x &* 1_664_525 &+ 1_013_904_223; return UInt8(truncatingIfNeeded: x >> 24) }
}

let encoder = JSONEncoder()
encoder.outputFormatting = [.withoutEscapingSlashes]

func escapeCases(_ input: [UInt8]) -> [Case] {
    var out = [UInt8](repeating: 0, count: MicrobenchAccess.maximumEscapedSize(input.count))
    let text = String(decoding: input, as: UTF8.self)
    return [
        Case(name: "JSONStringEscaper (hand-written, used)") { n in
            var sum = 0
            input.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    for _ in 0..<n { sum &+= MicrobenchAccess.escape(src, into: dst.baseAddress!) }
                }
            }
            return sum
        },
        Case(name: "Foundation JSONEncoder (String → Data)") { n in
            var sum = 0
            for _ in 0..<n { sum &+= (try? encoder.encode(String(decoding: input, as: UTF8.self)))?.count ?? 0 }
            return sum
        },
        Case(name: "Foundation JSONSerialization (String → Data)") { n in
            var sum = 0
            for _ in 0..<n {
                sum &+= (try? JSONSerialization.data(withJSONObject: String(decoding: input, as: UTF8.self),
                                                     options: [.fragmentsAllowed, .withoutEscapingSlashes]))?.count ?? 0
            }
            return sum
        },
        Case(name: "Foundation JSONEncoder, String already made") { n in
            var sum = 0
            for _ in 0..<n { sum &+= (try? encoder.encode(text))?.count ?? 0 }
            return sum
        },
    ]
}

func base64Cases(_ input: [UInt8]) -> [Case] {
    var out = [UInt8](repeating: 0, count: Base64.encodedLength(bytesCount: input.count))
    return [
        Case(name: "WSRelayCore Base64.encode (into memory, used)") { n in
            var sum = 0
            input.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    for _ in 0..<n { sum &+= MicrobenchAccess.base64(src, into: dst.baseAddress!) }
                }
            }
            return sum
        },
        Case(name: "swift-extras-base64 encode(bytes:into:) (MutableSpan)") { n in
            var sum = 0
            input.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for _ in 0..<n {
                        var span = MutableSpan(_unsafeElements: dst)
                        sum &+= Base64.encode(bytes: Span(_unsafeElements: src), into: &span)
                    }
                }
            }
            return sum
        },
        Case(name: "swift-extras-base64 encodeToBytes ([UInt8])") { n in
            var sum = 0
            for _ in 0..<n { sum &+= Base64.encodeToBytes(bytes: input).count }
            return sum
        },
        Case(name: "Foundation Data.base64EncodedData") { n in
            var sum = 0
            let data = Data(input)
            for _ in 0..<n { sum &+= data.base64EncodedData().count }
            return sum
        },
    ]
}

func envelopeCases(text: [UInt8], binary: [UInt8]) -> [Case] {
    let textMessage = ReceivedMessage(upstream: "market", epoch: 1, seq: 1, receivedAt: .now(), kind: .text,
                                      payload: ByteBuffer(bytes: text))
    let binaryMessage = ReceivedMessage(upstream: "market", epoch: 1, seq: 1, receivedAt: .now(), kind: .binary,
                                        payload: ByteBuffer(bytes: binary))
    var envelope = EnvelopeEncoder()
    var buffer = ByteBuffer()
    buffer.reserveCapacity(1 << 20)
    return [
        Case(name: "EnvelopeEncoder, text message (whole line)") { n in
            var sum = 0
            for _ in 0..<n { buffer.clear(); envelope.appendEnvelope(textMessage, to: &buffer); sum &+= buffer.readableBytes }
            return sum
        },
        Case(name: "EnvelopeEncoder, binary message (whole line)") { n in
            var sum = 0
            for _ in 0..<n { buffer.clear(); envelope.appendEnvelope(binaryMessage, to: &buffer); sum &+= buffer.readableBytes }
            return sum
        },
    ]
}

/// Every case at every size, in a fixed order (the ids `--run` takes).
func allCases(sizes: [Int]) -> [(size: Int, group: String, c: Case)] {
    sizes.flatMap { size -> [(size: Int, group: String, c: Case)] in
        let text = payload(text: size), binary = payload(binary: size)
        return escapeCases(text).map { (size, "escape", $0) } + base64Cases(binary).map { (size, "base64", $0) }
            + envelopeCases(text: text, binary: binary).map { (size, "envelope", $0) }
    }
}

// wsrelay-microbench [SIZE...]              timing table (median of 7 rounds, ns per message)
// wsrelay-microbench --list [SIZE...]       case ids
// wsrelay-microbench --run ID N [SIZE...]   run one case N times (for instruction counts under callgrind)
var arguments = Array(CommandLine.arguments.dropFirst())
var mode = "time"
var runID = 0, runCount = 0
if arguments.first == "--list" { mode = "list"; arguments.removeFirst() }
if arguments.first == "--run", arguments.count >= 3, let id = Int(arguments[1]), let n = Int(arguments[2]) {
    mode = "run"; runID = id; runCount = n; arguments.removeFirst(3)
}
let sizes = arguments.compactMap { Int($0) }
let cases = allCases(sizes: sizes.isEmpty ? [100, 4096] : sizes)
switch mode {
case "list":
    for (i, entry) in cases.enumerated() { print("\(i)\t\(entry.size)\t\(entry.group): \(entry.c.name)") }
case "run":
    print(cases[runID].c.run(runCount))
default:
    var lastSize = -1
    for entry in cases {
        if entry.size != lastSize {
            print("\n### \(entry.size)-byte payloads\n")
            print("| case | ns/message | MB/s of payload |")
            print("|---|---:|---:|")
            lastSize = entry.size
        }
        let r = measure(entry.c, payloadBytes: entry.size)
        print("| \(entry.group): \(entry.c.name) | \(String(format: "%.1f", r.nsPerOp)) | \(String(format: "%.0f", r.mbps)) |")
    }
}
