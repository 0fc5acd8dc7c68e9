#if canImport(Glibc)
    import Glibc
#endif

/// libFuzzer calls this once per input; it runs the harness chosen at start-up.
@_cdecl("LLVMFuzzerTestOneInput")
func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzMain.selected.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if WSRELAY_LIBFUZZER
    /// The libFuzzer driver as a function (`compiler-rt/lib/fuzzer/FuzzerInterface.h`): we own `main` so one
    /// binary carries every harness and picks one by name.
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<Int32>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32
#endif

/// `wsrelay-fuzz TARGET [libFuzzer options] [CORPUS_DIR...]`.
///
/// Built by `scripts/fuzz` (`-sanitize=fuzzer,address -DWSRELAY_LIBFUZZER`) it is a libFuzzer binary. A plain
/// `swift build` makes the same harnesses a replayer: every file (or file in a directory) given is run once,
/// which is how a crash input is reproduced without the instrumented build.
///
/// The target is also passed on in `WSRELAY_FUZZ_TARGET`, because libFuzzer's `-fork`/`-merge` modes start
/// the binary again with the options only.
@main
enum FuzzMain {
    static let environmentKey = "WSRELAY_FUZZ_TARGET"
    /// Written once in `main`, before libFuzzer starts calling `LLVMFuzzerTestOneInput` on this thread.
    nonisolated(unsafe) static var selected: FuzzTarget = FuzzTargets.all[0]

    static func main() {
        var args = CommandLine.arguments
        let name: String
        if let fromEnvironment = getenv(environmentKey).map({ String(cString: $0) }) {
            name = fromEnvironment
            if args.count > 1, args[1] == name { args.remove(at: 1) }
        } else if args.count > 1, !args[1].hasPrefix("-") {
            name = args.remove(at: 1)
            setenv(environmentKey, name, 1)
        } else {
            usage(exitCode: 2)
        }
        guard let target = FuzzTargets.all.first(where: { $0.name == name }) else {
            printError("wsrelay-fuzz: unknown target \"\(name)\"\n")
            usage(exitCode: 2)
        }
        selected = target
        #if WSRELAY_LIBFUZZER
            var cArgs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
            var argc = Int32(args.count)
            let status = cArgs.withUnsafeMutableBufferPointer { buffer -> Int32 in
                var argv = buffer.baseAddress
                return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput)
            }
            exit(status)
        #else
            exit(CorpusReplay.run(paths: args.dropFirst().filter { !$0.hasPrefix("-") }, target: target))
        #endif
    }

    static func usage(exitCode: Int32) -> Never {
        var text = "usage: wsrelay-fuzz TARGET [libFuzzer options] [CORPUS_DIR|FILE...]\ntargets:\n"
        for target in FuzzTargets.all {
            text += "  \(target.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(target.summary)\n"
        }
        printError(text)
        exit(exitCode)
    }
}
