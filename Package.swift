// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "gocker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gocker", targets: ["gocker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // The C core: clone, namespaces, mounts, pivot_root and execve in the child.
        .target(
            name: "CGockerCore",
            path: "csrc",
            exclude: ["floor"],
            cSettings: [.define("_GNU_SOURCE"), .unsafeFlags(["-O2"])],
            // libcgroup's opens of /proc/mounts, and its first clearing of its mount
            // table, go through csrc/libcgroup_mounts.c. libseccomp (Debian
            // libseccomp-dev; its static archive in the release binary)
            // compiles seccomp profiles (csrc/seccomp.c). libcrypto (Debian
            // libssl-dev; its static archive, not libssl) computes SHA-256
            // through a small gk_ wrapper (csrc/sha256.c) rather than a
            // systemLibrary target: the wrapper keeps the hash's state a plain
            // C struct a Swift value holds (no allocation, copies that go on
            // on their own), and it alone sees the OpenSSL declarations, one
            // of which it needs with their deprecation turned off (why: see
            // csrc/sha256.c).
            // libssl (the same package) speaks TLS to registries (csrc/tls.c).
            linkerSettings: [.linkedLibrary("seccomp"), .linkedLibrary("ssl"), .linkedLibrary("crypto"),
                             .unsafeFlags(["-Xlinker", "--wrap=fopen", "-Xlinker", "--wrap=memset"])]
        ),
        // The bench's reference row, `gocker-floor ROOTFS` (the gocker binary
        // under that name): the least a container start can cost here.
        .target(
            name: "CGockerFloor",
            path: "csrc/floor",
            publicHeadersPath: ".",
            cSettings: [.define("_GNU_SOURCE"), .unsafeFlags(["-O2"])]
        ),
        // zlib and liblzma, to read gzip and xz image tarballs. (The tar format
        // itself is read by gocker: see Sources/GockerCore/Archive.)
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .systemLibrary(
            name: "CLzma",
            pkgConfig: "liblzma",
            providers: [.apt(["liblzma-dev"])]
        ),
        // libdeflate: a gzip layer that is a whole file, inflated in one call.
        .systemLibrary(
            name: "CDeflate",
            pkgConfig: "libdeflate",
            providers: [.apt(["libdeflate-dev"])]
        ),
        // OCI types, errors, system-call wrappers, ids and names, the state and image stores.
        .target(
            name: "GockerCore",
            dependencies: ["CGockerCore", "CZlib", "CLzma", "CDeflate"]
        ),
        // The system's libcgroup (Debian libcgroup-dev).
        .systemLibrary(
            name: "CLibcgroup",
            pkgConfig: "libcgroup",
            providers: [.apt(["libcgroup-dev"])]
        ),
        // The controller protocol, the registry, the driver and the backends.
        .target(
            name: "GockerCgroups",
            dependencies: ["GockerCore", "CLibcgroup", "CGockerCore"]
        ),
        // Resource-controller plugins (memory, cpuset, cpu, pids, ...). See plugins/README.md.
        .target(
            name: "GockerControllers",
            dependencies: ["GockerCore", "GockerCgroups"],
            path: "plugins",
            exclude: ["README.md"]
        ),
        // create/start/kill/delete, rootfs and overlay, the docker-like run.
        .target(
            name: "GockerRuntime",
            dependencies: ["GockerCore", "GockerCgroups", "GockerControllers", "CGockerCore"]
        ),
        // Registries: the HTTP/1.1 client (TLS through csrc/tls.c), the
        // distribution API, `pull`.
        .target(
            name: "GockerRegistry",
            dependencies: ["GockerCore", "CGockerCore"]
        ),
        // `gocker bench`: container starts timed from outside, the report
        // and its chart.
        .target(
            name: "GockerBench",
            dependencies: ["GockerRuntime", "GockerCore", "GockerCgroups", "CGockerFloor"]
        ),
        // Argument definitions of both front doors.
        .target(
            name: "GockerCLI",
            dependencies: [
                "GockerRuntime",
                "GockerBench",
                "GockerRegistry",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "gocker",
            dependencies: ["GockerCLI"]
        ),
        .testTarget(name: "GockerCoreTests", dependencies: ["GockerCore", "CGockerCore"]),
        .testTarget(name: "GockerRuntimeTests", dependencies: ["GockerRuntime", "CGockerCore"]),
        .testTarget(name: "GockerCgroupsTests", dependencies: ["GockerCgroups", "GockerControllers", "CGockerCore"]),
        .testTarget(name: "GockerBenchTests", dependencies: ["GockerBench", "GockerRuntime"]),
        .testTarget(name: "GockerCLITests", dependencies: ["GockerCLI"]),
        .testTarget(name: "GockerRegistryTests", dependencies: ["GockerRegistry", "GockerCore"]),
        .testTarget(name: "IntegrationTests", dependencies: ["GockerCore", "GockerCgroups", "gocker"]),
    ]
)
