// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "etag-proxy",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "etag-proxy", targets: ["etag-proxy"]),
        .executable(name: "etag-demo-api", targets: ["etag-demo-api"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // System libraries (apt providers so SwiftPM names the missing package).
        .systemLibrary(name: "CLibUV", pkgConfig: "libuv", providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // Only what Swift cannot express safely, in two C units: the server's SO_REUSEPORT listen helper and io_uring
        // batch send (liburing-dev; its header must not reach the Swift modules), and the shared-memory region with
        // its atomics and seqlocks (no libuv, no liburing: all the cache imports).
        .target(name: "CEtagShim", dependencies: ["CLibUV"], linkerSettings: [.linkedLibrary("uring")]),
        .target(name: "CEtagShm"),
        // hiredis's asynchronous client attached to a libuv loop by an adapter of our own (it writes each loop
        // iteration's commands at once instead of waiting for writability), for the fleet's Redis connections.
        .target(name: "CEtagRedis", dependencies: ["CLibUV"], linkerSettings: [.linkedLibrary("hiredis")]),
        // Pure HTTP/1.1 parsing and serialization (RFC 9112), no I/O.
        .target(name: "EtagHTTP"),
        // Pure policy: config value, forwarding rules, problem+json, ETag hashing.
        .target(name: "EtagCore", dependencies: ["EtagHTTP", "COpenSSL"]),
        // Loading the config from YAML / environment (Foundation and Yams stay here).
        .target(name: "EtagConfig", dependencies: ["EtagCore", "EtagHTTP", .product(name: "Yams", package: "Yams")]),
        // The shared-memory table of ETags (and, later, write leases) behind a small Swift API.
        .target(name: "EtagCache", dependencies: ["EtagCore", "CEtagShm"]),
        // libuv wiring: workers, listeners, client and upstream connections.
        .target(
            name: "EtagServer",
            dependencies: ["EtagHTTP", "EtagCore", "EtagCache", "CLibUV", "CEtagShim", "CEtagShm", "CEtagRedis"]),
        .executableTarget(
            name: "etag-proxy",
            dependencies: [
                "EtagServer", "EtagConfig", "EtagCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The bundled demo: a legacy persons API without ETags, on the project's own HTTP parser.
        .executableTarget(
            name: "etag-demo-api",
            dependencies: ["EtagHTTP", "EtagCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(
            name: "TestSupport", dependencies: ["EtagServer", "EtagCore", "EtagCache", "COpenSSL"],
            path: "Tests/TestSupport"),
        .testTarget(name: "EtagHTTPTests", dependencies: ["EtagHTTP", "TestSupport"]),
        .testTarget(name: "EtagCoreTests", dependencies: ["EtagCore", "EtagHTTP"]),
        .testTarget(
            name: "EtagConfigTests",
            dependencies: ["EtagConfig", "EtagCore", "EtagHTTP", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "EtagCacheTests", dependencies: ["EtagCache", "EtagCore"]),
        // Exchanges driven in-process against a scripted upstream: no sockets, no sleeps.
        .testTarget(
            name: "ExchangeTests",
            dependencies: ["EtagServer", "EtagCore", "EtagCache", "EtagHTTP", "CLibUV", "TestSupport"]
        ),
        .testTarget(
            name: "ProxyIntegrationTests",
            dependencies: ["EtagServer", "EtagCore", "EtagConfig", "EtagCache", "TestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
