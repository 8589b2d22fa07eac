import Common
import Foundation
import Testing
import TestSupport

/// `sshca init --key-type` values.
enum CAKeyType: String, CaseIterable, Sendable, CustomStringConvertible {
    case ed25519
    case ecdsaP256 = "ecdsa-p256"
    case ecdsaP384 = "ecdsa-p384"
    case ecdsaP521 = "ecdsa-p521"
    case rsa3072 = "rsa-3072"
    case rsa4096 = "rsa-4096"

    var description: String { rawValue }

    var publicKeyTypeName: String {
        switch self {
        case .ed25519: return "ssh-ed25519"
        case .ecdsaP256: return "ecdsa-sha2-nistp256"
        case .ecdsaP384: return "ecdsa-sha2-nistp384"
        case .ecdsaP521: return "ecdsa-sha2-nistp521"
        case .rsa3072, .rsa4096: return "ssh-rsa"
        }
    }

    var isRSA: Bool { self == .rsa3072 || self == .rsa4096 }

    /// Signature algorithms OpenSSH accepts from this CA by default.
    var acceptableSignatureAlgorithms: Set<String> {
        isRSA ? ["rsa-sha2-512", "rsa-sha2-256"] : [publicKeyTypeName]
    }
}

/// Shared, lazily built fixtures (RSA key generation is the slow part of the suite).
/// Tests copy them into their own directory before use, so nothing shared is ever modified.
enum Fixtures {
    private static let caHomes = AsyncCache<CAKeyType, URL>()
    private static let userKeys = AsyncCache<UserKeyType, KeyPair>()
    private static let plainKeys = AsyncCache<String, KeyPair>()

    /// A CA home made by `sshca init --key-type TYPE --no-passphrase` (read-only; copy it).
    static func caHome(_ type: CAKeyType) async throws -> URL {
        try await caHomes.value(for: type) {
            let home = sharedFixtureDirectory.child("ca-\(type.rawValue)")
            let result = try await SSHCA.run(
                ["init", "--home", home.path, "--key-type", type.rawValue, "--no-passphrase"],
                currentDirectory: sharedFixtureDirectory)
            guard result.succeeded else { throw SubprocessError.failed(result) }
            return home
        }
    }

    /// A private copy of the cached CA home of `type`, at `directory/name`.
    static func copyCAHome(_ type: CAKeyType, into directory: URL, name: String = "ca-home") async throws -> URL {
        let source = try await caHome(type)
        let destination = directory.child(name)
        try copyItem(source, to: destination)
        // copyItem may not preserve modes everywhere; the CLI insists on 0600 keys.
        for file in ["user_ca.key", "host_ca.key"] where fileExists(destination.child(file)) {
            try setMode(try fileMode(source.child(file)), of: destination.child(file))
        }
        return destination
    }

    /// A user key pair of `type` generated once with ssh-keygen (read-only; copy it).
    static func userKey(_ type: UserKeyType) async throws -> KeyPair {
        try await userKeys.value(for: type) {
            let dir = sharedFixtureDirectory.child("user-keys")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            return try await SSHKeygen.generate(type, at: dir.child("id_\(type.rawValue)"), comment: "user@\(type.rawValue)")
        }
    }

    static func copyUserKey(_ type: UserKeyType, into directory: URL, name: String) async throws -> KeyPair {
        try await userKey(type).copy(to: directory, name: name)
    }

    /// A plain ssh-keygen key pair (e.g. a CA key to hold in ssh-agent), generated once per name.
    static func plainKey(_ name: String, _ arguments: [String]) async throws -> KeyPair {
        try await plainKeys.value(for: name) {
            let dir = sharedFixtureDirectory.child("plain-keys")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            return try await SSHKeygen.generate(arguments, at: dir.child(name), comment: name, typeName: name)
        }
    }
}

// MARK: - Running the CLI

/// `sshca init --home HOME [--key-type TYPE] EXTRA` (no --key-type when `keyType` is nil).
func sshcaInit(home: URL, keyType: CAKeyType? = .ed25519, extra: [String] = ["--no-passphrase"]) async throws -> ProcessResult {
    var args = ["init", "--home", home.path]
    if let keyType { args += ["--key-type", keyType.rawValue] }
    return try await SSHCA.run(args + extra, currentDirectory: home.deletingLastPathComponent())
}

/// `sshca sign --home HOME ARGS PUBKEY`.
func sshcaSign(
    home: URL, _ arguments: [String], publicKey: URL, environment: [String: String?] = [:],
    timeout: Duration = .seconds(60)
) async throws -> ProcessResult {
    try await SSHCA.run(
        ["sign", "--home", home.path] + arguments + [publicKey.path],
        environment: environment, currentDirectory: publicKey.deletingLastPathComponent(), timeout: timeout)
}

/// Signs a user certificate for the current login name and requires success.
@discardableResult
func signForLogin(
    home: URL, key: KeyPair, keyID: String = "login", extra: [String] = [],
    environment: [String: String?] = [:], sourceLocation: SourceLocation = #_sourceLocation
) async throws -> URL {
    let result = try await sshcaSign(
        home: home, ["--key-id", keyID, "--principals", currentUserName] + extra,
        publicKey: key.publicKey, environment: environment)
    try #require(result.succeeded, "sshca sign failed:\n\(result)", sourceLocation: sourceLocation)
    try #require(fileExists(key.certificate), "no certificate at \(key.certificate.path)", sourceLocation: sourceLocation)
    return key.certificate
}

/// Current time in unix seconds.
func unixNow() -> UInt64 { UInt64(Date().timeIntervalSince1970) }

// MARK: - Assertions

/// True when some stderr line starts with "error: " (the CLI's documented error format).
func hasErrorLine(_ result: ProcessResult) -> Bool {
    result.stderrText.split(separator: "\n").contains { $0.hasPrefix("error: ") }
}

/// Checks a refused CLI run: one of `exitCodes`, no crash/timeout, an "error: " line on stderr
/// that mentions (case-insensitively) at least one of `mentions`.
func expectFailure(
    _ result: ProcessResult, exitCodes: Set<Int32>, mentions: [String],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(!result.timedOut && !result.terminatedBySignal, "crashed or hung:\n\(result)", sourceLocation: sourceLocation)
    #expect(exitCodes.contains(result.exitCode), "expected exit code in \(exitCodes.sorted()):\n\(result)", sourceLocation: sourceLocation)
    #expect(hasErrorLine(result), "stderr has no line starting with \"error: \":\n\(result)", sourceLocation: sourceLocation)
    let lowered = result.stderrText.lowercased()
    #expect(
        mentions.isEmpty || mentions.contains { lowered.contains($0.lowercased()) },
        "stderr mentions none of \(mentions):\n\(result)", sourceLocation: sourceLocation)
}

/// Checks an ssh login that must succeed and print `expectedOutput`.
func expectLogin(
    _ result: ProcessResult, sshd: SSHD, output expectedOutput: String = "ok",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(
        result.succeeded && result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == expectedOutput,
        "login failed or printed something else than \(expectedOutput):\n\(result)\n--- sshd log ---\n\(sshd.log.suffix(6000))",
        sourceLocation: sourceLocation)
}

/// Checks an ssh login that sshd must refuse: ssh exits non-zero, says "Permission denied",
/// and the server log since `mark` records no accepted key but (optionally) `logEvidence`.
func expectRefusedLogin(
    _ result: ProcessResult, sshd: SSHD, since mark: Int, logEvidence: [String] = [],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let log = sshd.log(since: mark)
    #expect(!result.succeeded, "login should have been refused:\n\(result)\n--- sshd log ---\n\(log)", sourceLocation: sourceLocation)
    #expect(!result.stdoutText.contains("ok"), "the command ran:\n\(result)", sourceLocation: sourceLocation)
    #expect(
        result.stderrText.contains("Permission denied"),
        "ssh did not report an authentication refusal:\n\(result)\n--- sshd log ---\n\(log)", sourceLocation: sourceLocation)
    #expect(!log.contains("Accepted publickey"), "sshd accepted a key:\n\(log)", sourceLocation: sourceLocation)
    for evidence in logEvidence {
        #expect(log.contains(evidence), "sshd log lacks \"\(evidence)\":\n\(log)", sourceLocation: sourceLocation)
    }
}
