// swift-tools-version:6.0
import PackageDescription

// Layers, bottom to top (dependencies point down only):
//   CLibCrypto/CCryptoShim -> SSHFormat -> SSHCrypto -> Authority -> sshca (CLI)
let package = Package(
    name: "sshca",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sshca", targets: ["sshca"]),
        .executable(name: "sshca-bench", targets: ["sshca-bench"]),
        .library(name: "Authority", targets: ["Authority"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // OpenSSL libcrypto, found through pkg-config (Debian: libssl-dev).
        .systemLibrary(
            name: "CLibCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // Thin C shim for OpenSSL macros, OSSL_PARAM building and variadic calls.
        .target(name: "CCryptoShim", dependencies: ["CLibCrypto"]),
        // SSH wire formats: no files, no SQLite, no HTTP.
        .target(name: "SSHFormat", dependencies: ["CCryptoShim"]),
        // CA keys, the Signer abstraction (OpenSSL and ssh-agent), verification.
        .target(name: "SSHCrypto", dependencies: ["SSHFormat", "CCryptoShim"]),
        // Configuration, the CA home, validity rules, issuance.
        .target(name: "Authority", dependencies: ["SSHFormat", "SSHCrypto"]),
        .executableTarget(
            name: "sshca",
            dependencies: ["Authority", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(name: "sshca-bench", dependencies: ["Authority"]),

        .target(name: "TestSupport", dependencies: ["SSHFormat"], path: "Tests/TestSupport"),
        .testTarget(name: "SSHFormatTests", dependencies: ["SSHFormat", "TestSupport"]),
        .testTarget(name: "SSHCryptoTests", dependencies: ["SSHCrypto", "TestSupport"]),
        .testTarget(name: "AuthorityTests", dependencies: ["Authority", "TestSupport"]),
        .testTarget(name: "IntegrationTests", dependencies: ["Authority", "TestSupport", "sshca"]),
    ]
)
