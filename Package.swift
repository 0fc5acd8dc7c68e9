// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "wsrelay",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "wsrelay", targets: ["wsrelay"]),
        .executable(name: "wsrelay-sim", targets: ["wsrelay-sim"]),
        .executable(name: "wsrelay-conformance", targets: ["wsrelay-conformance"]),
        .executable(name: "wsrelay-fuzz", targets: ["wsrelay-fuzz"]),
        .library(name: "WSRelayCore", targets: ["WSRelayCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", exact: "0.6.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-extras/swift-extras-base64.git", from: "1.2.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // glibc's <malloc.h> (header only): see MallocTuning.
        .systemLibrary(name: "CGlibcMalloc"),
        // glibc's posix_spawn_file_actions_addclosefrom_np (a declaration only): see ProcessRunner.
        .systemLibrary(name: "CGlibcSpawn"),
        .systemLibrary(
            name: "CNats",
            pkgConfig: "libnats",
            providers: [.apt(["libnats-dev"])]
        ),
        .target(
            name: "WSRelayCore",
            dependencies: [
                "CSystemd",
                "CGlibcMalloc",
                "CGlibcSpawn",
                "CNats",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ExtrasBase64", package: "swift-extras-base64"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        .target(
            name: "WSRelaySimulator",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        .executableTarget(
            name: "wsrelay",
            dependencies: [
                "WSRelayCore",
                "WSRelaySimulator",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "wsrelay-sim",
            dependencies: [
                "WSRelaySimulator",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "wsrelay-conformance",
            dependencies: [
                "WSRelayCore",
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // bench/micro: the envelope encoder's helpers against the libraries that could replace them.
        .executableTarget(
            name: "wsrelay-microbench",
            dependencies: [
                "WSRelayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ExtrasBase64", package: "swift-extras-base64"),
            ],
            path: "bench/microbench"
        ),
        // libFuzzer harnesses for every parser of outside input (scripts/fuzz builds them with
        // -sanitize=fuzzer,address; a plain build makes a corpus replayer).
        .executableTarget(
            name: "wsrelay-fuzz",
            dependencies: [
                "WSRelayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Fuzz/Sources"
        ),
        // What both test targets share: temporary directories, log capture, polling, seeded randomness, raw
        // Unix sockets.
        .target(
            name: "WSRelayTestSupport",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/WSRelayTestSupport"
        ),
        .testTarget(
            name: "WSRelayCoreTests",
            dependencies: [
                "WSRelayCore", "WSRelayTestSupport",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        .testTarget(
            name: "WSRelayIntegrationTests",
            dependencies: [
                "WSRelayCore", "WSRelaySimulator", "wsrelay", "WSRelayTestSupport", "CGlibcSpawn",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
    ]
)
