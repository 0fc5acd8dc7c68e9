import Foundation

/// Runs every given file, or every file in a given directory, through one harness once: the uninstrumented
/// build's way to reproduce a crash input or to check a corpus.
enum CorpusReplay {
    static func run(paths: [String], target: FuzzTarget) -> Int32 {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                printError("wsrelay-fuzz: \(path): no such file or directory\n")
                return 2
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                files += names.sorted().map { "\(path)/\($0)" }
            } else {
                files.append(path)
            }
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                printError("wsrelay-fuzz: cannot read \(file)\n")
                return 2
            }
            data.withUnsafeBytes { target.run($0) }
        }
        print("wsrelay-fuzz: \(target.name): \(files.count) inputs replayed, no crash")
        return 0
    }
}
