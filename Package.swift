// swift-tools-version:6.1
import PackageDescription

// Layers, bottom to top (dependencies point down only):
//   CLibCrypto/CCryptoShim -> SSHFormat -> SSHCrypto -> Common (API shapes, errors, files, clock)
//   CA side:     Common, Ledger (the protocol) <- LedgerSQLite (GRDB, CSQLiteShim) -> Authority -> Service (HTTP)
//   Client side: Common -> Client (talks to the service) -> HostSetup (servers); never Authority or Ledger
//   sshca (CLI) uses both sides.
let package = Package(
    name: "sshca",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sshca", targets: ["sshca"]),
        .executable(name: "sshca-bench", targets: ["sshca-bench"]),
        .executable(name: "sshca-fuzz", targets: ["sshca-fuzz"]),
        .library(name: "Authority", targets: ["Authority"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // Default traits off: sshca needs neither swift-configuration nor full Foundation there.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // NIOHTTPTypes: the request parts a per-connection guard sees (Hummingbird uses it too).
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
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
        // sqlite3_db_config, which is variadic (the system libsqlite3, as GRDB links it).
        .target(name: "CSQLiteShim", dependencies: [.product(name: "GRDBSQLite", package: "GRDB.swift")]),
        // Certificates, serials, revocations and the audit chain: the backend-neutral protocol,
        // its records and the in-memory shared state a single node may use.
        .target(name: "Ledger", dependencies: ["SSHFormat"]),
        // The embedded backend: the ledger in one SQLite file.
        .target(name: "LedgerSQLite", dependencies: ["Ledger", "SSHFormat", "CSQLiteShim", .product(name: "GRDB", package: "GRDB.swift")]),
        // The commit the build scripts stamp into the binary (sshca --version, /metrics).
        .target(name: "CBuildStamp"),
        // Configuration, the CA home, validity rules, issuance, revocation, KRL publishing.
        // What both sides share: the service API's JSON shapes, errors, atomic file writes, the
        // clock, durations and sshca.toml's syntax. No storage, no HTTP.
        .target(name: "Common", dependencies: ["SSHFormat", "SSHCrypto"]),
        .target(name: "Authority", dependencies: ["Common", "SSHFormat", "SSHCrypto", "Ledger", "LedgerSQLite", "CBuildStamp"]),
        // The HTTP service: routes, authentication (SSHSIG challenges, tokens), policy, metrics.
        .target(name: "Service", dependencies: [
            "Authority", "Common", "Ledger", "SSHFormat", "SSHCrypto",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
        ]),
        // Talking to the service (pinned to the CA key and, over TLS, a CA bundle), login/logout.
        .target(name: "Client", dependencies: [
            "Common", "SSHFormat", "SSHCrypto",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // Server side: install the CA's files on a server without ever locking anyone out.
        .target(name: "HostSetup", dependencies: ["Common", "Client", "SSHFormat", "SSHCrypto"]),
        .executableTarget(
            name: "sshca",
            dependencies: ["Authority", "Client", "Common", "HostSetup", "Ledger", "Service", "SSHCrypto", "SSHFormat", .product(name: "Logging", package: "swift-log"), .product(name: "ArgumentParser", package: "swift-argument-parser")],
            // The static Swift runtime's link flags export every symbol of every module (40,000
            // names): each start then pays for a symbol table that large (dladdr in the runtime's
            // start-up scans it, the loader's lookups search it). Nothing resolves symbols in the
            // sshca binary, so release builds export none (about 1 ms off every command's start).
            linkerSettings: [.unsafeFlags(["-Xlinker", "--no-export-dynamic"], .when(configuration: .release))]
        ),
        .executableTarget(name: "sshca-bench", dependencies: ["Authority", "Common"]),
        // Parsers as fuzz targets: corpus replay normally, libFuzzer with scripts/fuzz.
        .executableTarget(name: "sshca-fuzz", dependencies: [
            "Authority", "Client", "Common", "HostSetup", "Ledger", "Service", "SSHCrypto", "SSHFormat",
            .product(name: "HummingbirdCore", package: "hummingbird"),
        ]),

        .target(name: "TestSupport", dependencies: ["SSHFormat"], path: "Tests/TestSupport"),
        .testTarget(name: "SSHFormatTests", dependencies: ["SSHFormat", "TestSupport"]),
        .testTarget(name: "SSHCryptoTests", dependencies: ["SSHCrypto", "TestSupport"]),
        .testTarget(name: "AuthorityTests", dependencies: ["Authority", "Common", "TestSupport"]),
        .testTarget(name: "IntegrationTests", dependencies: ["Authority", "Common", "TestSupport", "sshca"]),
        .testTarget(name: "CLITests", dependencies: ["sshca", "Common", "TestSupport"]),
        .testTarget(name: "LedgerTests", dependencies: ["Authority", "Common", "Ledger", "LedgerSQLite", "SSHFormat", "SSHCrypto", "TestSupport"]),
        .testTarget(name: "ServiceTests", dependencies: ["Service", "Client", "Authority", "Common", "Ledger", "LedgerSQLite", "SSHFormat", "SSHCrypto", "TestSupport"]),
        .testTarget(name: "HostSetupTests", dependencies: ["Authority", "Common", "HostSetup", "SSHFormat", "TestSupport"]),
    ]
)
