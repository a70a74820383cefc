// swift-tools-version:6.0
// Kiln: continuous integration and delivery for machine learning.
// The module graph and its one-way dependencies are described in DESIGN.md (Modules).
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "kiln",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "kiln", targets: ["kiln"]),
        .library(name: "KilnSandbox", targets: ["KilnSandbox"]),
        .library(name: "KilnStore", targets: ["KilnStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // Everything between clone() and execve(): must be C (see the header).
        .target(name: "CKilnSandbox"),
        .systemLibrary(
            name: "CSeccomp",
            pkgConfig: "libseccomp",
            providers: [.apt(["libseccomp-dev"])]
        ),
        // libarchive's declarations only (headers in /usr/include); CArchiveLazy supplies the
        // functions and loads the library on first use, keeping it out of every start-up.
        .systemLibrary(
            name: "CArchive",
            providers: [.apt(["libarchive-dev"])]
        ),
        .target(name: "CArchiveLazy", linkerSettings: [.linkedLibrary("dl")]),
        .target(
            name: "KilnSandbox",
            dependencies: [
                "CKilnSandbox", "CSeccomp",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "KilnStore",
            dependencies: [
                "CArchive", "CArchiveLazy",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        // libyaml's event parser, for recipes (Yams would bring Foundation and ICU into start-up).
        .systemLibrary(
            name: "CLibYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .target(
            name: "KilnRecipe",
            dependencies: ["CLibYAML", "KilnSandbox", "KilnStore"],
            swiftSettings: swiftSettings
        ),
        // Images: import (directories, tars, OCI layouts, docker archives), records, lookup.
        .target(
            name: "KilnImage",
            dependencies: ["KilnStore"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "KilnEngine",
            dependencies: ["KilnSandbox", "KilnStore", "KilnRecipe", "KilnImage"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "KilnCommands",
            dependencies: [
                // CKilnSandbox: `kiln run`'s interrupt handler (Interrupts.swift) is C.
                "CKilnSandbox", "KilnEngine", "KilnImage", "KilnRecipe", "KilnSandbox", "KilnStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "kiln", dependencies: ["KilnCommands"], swiftSettings: swiftSettings),
        // Benchmarks (run by the scripts in benchmarks/, never by the tests).
        .executableTarget(name: "sandbox-benchmark", dependencies: ["KilnSandbox"], swiftSettings: swiftSettings),

        .target(
            name: "KilnTestSupport",
            dependencies: ["KilnSandbox", "KilnStore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KilnSandboxTests",
            dependencies: ["KilnSandbox", "KilnTestSupport", "kiln"],
            // The probe is compiled statically by the tests, so it runs in an empty sandbox.
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KilnStoreTests",
            dependencies: ["KilnStore", "KilnTestSupport", "kiln"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "KilnRecipeTests", dependencies: ["KilnRecipe", "KilnStore"], swiftSettings: swiftSettings),
        .testTarget(name: "KilnImageTests", dependencies: ["KilnImage", "KilnStore", "KilnTestSupport", "kiln"], swiftSettings: swiftSettings),
        .testTarget(name: "KilnEngineTests", dependencies: ["KilnEngine", "KilnImage", "KilnTestSupport", "kiln"], swiftSettings: swiftSettings),
    ]
)
