import CGlibcMalloc
import Glibc
import Testing
@testable import WSRelayCore

@Suite("malloc tuning")
struct MallocTuningTests {
    /// glibc serves a block from a mapping of its own when its size reached the mmap threshold; such a block's
    /// usable size is its page-rounded mapping less the 16-byte header, a heap block's is the request rounded
    /// to 16 plus 8. For 1 MiB + 1 the two differ.
    static func isOwnMapping(bytes: Int) -> Bool {
        let block = malloc(bytes)!
        defer { free(block) }
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let mapped = (bytes + 8 + pageSize - 1) / pageSize * pageSize - 16
        return malloc_usable_size(block) == mapped
    }

    @Test("with the thresholds set, a 1 MiB buffer comes from the heap; with glibc's initial 128 KiB it was a mapping of its own")
    func thresholdsKeepMegabyteBuffersOnTheHeap() {
        let size = 1024 * 1024 + 1
        // glibc's initial threshold, set by hand so the check is shown to tell the two apart in this process.
        #expect(mallopt(wsrelay_m_mmap_threshold, 128 * 1024) == 1)
        #expect(Self.isOwnMapping(bytes: size))
        #expect(MallocTuning.apply(environment: [:]) == .applied)
        #expect(!Self.isOwnMapping(bytes: size))
        // Large messages still get a mapping of their own (returned to the kernel when freed).
        #expect(Self.isOwnMapping(bytes: MallocTuning.mmapThreshold + 1))
    }

    @Test("an operator's own malloc settings in the environment are left alone")
    func environmentWins() {
        #expect(MallocTuning.environmentSetting([:]) == nil)
        #expect(MallocTuning.environmentSetting(["GLIBC_TUNABLES": "glibc.rtld.nns=2"]) == nil)
        #expect(MallocTuning.environmentSetting(["GLIBC_TUNABLES": "glibc.rtld.nns=2:glibc.malloc.trim_threshold=1"]) == "GLIBC_TUNABLES")
        #expect(MallocTuning.environmentSetting(["MALLOC_ARENA_MAX": "2", "PATH": "/bin"]) == "MALLOC_ARENA_MAX")
        #expect(MallocTuning.apply(environment: ["MALLOC_TRIM_THRESHOLD_": "0"]) == .leftToEnvironment("MALLOC_TRIM_THRESHOLD_"))
    }
}
