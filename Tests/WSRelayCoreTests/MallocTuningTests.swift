import Testing
@testable import WSRelayCore

/// Whether glibc took the thresholds is checked on the real daemon (MallocTuningDaemonTests: the start line
/// says "thresholds set" only when both `mallopt` calls succeeded). Checking where a block comes from in this
/// process is not reliable: a free chunk left by another test can serve a 1 MiB request whatever the threshold.
@Suite("malloc tuning")
struct MallocTuningTests {
    @Test("an operator's own malloc settings in the environment are left alone")
    func environmentWins() {
        #expect(MallocTuning.environmentSetting([:]) == nil)
        #expect(MallocTuning.environmentSetting(["GLIBC_TUNABLES": "glibc.rtld.nns=2"]) == nil)
        #expect(MallocTuning.environmentSetting(["GLIBC_TUNABLES": "glibc.rtld.nns=2:glibc.malloc.trim_threshold=1"]) == "GLIBC_TUNABLES")
        #expect(MallocTuning.environmentSetting(["MALLOC_ARENA_MAX": "2", "PATH": "/bin"]) == "MALLOC_ARENA_MAX")
        #expect(MallocTuning.apply(environment: ["MALLOC_TRIM_THRESHOLD_": "0"]) == .leftToEnvironment("MALLOC_TRIM_THRESHOLD_"))
    }
}
