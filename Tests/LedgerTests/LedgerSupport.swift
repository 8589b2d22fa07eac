import Common
import Foundation
import Testing
import TestSupport
import SSHFormat
#if canImport(Glibc)
import Glibc
#endif

// Helpers for the ledger / revocation / KRL tests. Everything runs in the test's own temporary
// directory; nothing here is shared between tests except read-only constants.

/// `sshca list --json`, the fields these tests look at.
struct ListedCertificate: Decodable, Sendable, Equatable {
    struct Revocation: Decodable, Sendable, Equatable {
        var id: Int64
        var kind: String
        var target: String
        var reason: String
    }
    var serial: UInt64
    var keyId: String
    var principals: [String]
    var status: String
    var keyFingerprint: String
    var caFingerprint: String
    var certificate: String
    var revocation: Revocation?
}

/// `sshca audit list --json`.
struct AuditListEntry: Decodable, Sendable, Equatable {
    var id: Int64
    var at: UInt64
    var actor: String
    var action: String
    var details: String
    var hash: String
}

/// A CA home made with `sshca init --no-passphrase`, and the CLI commands run against it.
struct CAHomeFixture: Sendable {
    let home: URL

    var userCAPublicKey: URL { home.child("user_ca.pub") }
    var hostCAPublicKey: URL { home.child("host_ca.pub") }
    var krlFile: URL { home.child("revoked.krl") }
    var ledgerFile: URL { home.child("ledger.sqlite") }
    var configFile: URL { home.child("sshca.toml") }

    /// `sshca init --home DIR/name --no-passphrase`.
    static func create(in directory: URL, name: String = "ca") async throws -> CAHomeFixture {
        let home = directory.child(name)
        let result = try await SSHCA.run(["init", "--home", home.path, "--no-passphrase"], currentDirectory: directory)
        guard result.succeeded else { throw SubprocessError.failed(result) }
        return CAHomeFixture(home: home)
    }

    /// `sshca SUBCOMMAND --home HOME ARGS...` (the subcommand path is everything before `--home`).
    func run(_ subcommand: [String], _ arguments: [String] = [], timeout: Duration = .seconds(120)) async throws -> ProcessResult {
        try await SSHCA.run(subcommand + ["--home", home.path] + arguments, timeout: timeout)
    }

    /// The same, and the command must succeed.
    @discardableResult
    func runChecked(_ subcommand: [String], _ arguments: [String] = []) async throws -> ProcessResult {
        let result = try await run(subcommand, arguments)
        guard result.succeeded else { throw SubprocessError.failed(result) }
        return result
    }

    /// `sshca sign`; returns the certificate file and the certificate (parsed in-process).
    @discardableResult
    func sign(_ key: KeyPair, keyID: String, principals: [String], output: URL? = nil,
              extra: [String] = []) async throws -> (file: URL, certificate: Certificate) {
        let destination = output ?? key.certificate
        try await runChecked(["sign"], ["--key-id", keyID, "--principals", principals.joined(separator: ","),
                                        "--output", destination.path] + extra + [key.publicKey.path])
        return (destination, try Certificate(parsingText: try readText(destination)))
    }

    /// `sshca revoke --reason REASON ARGS`, then (acceptance item 9) the published KRL must still be
    /// one OpenSSH loads: `ssh-keygen -Q -f revoked.krl some.pub` exits 0 or 1, never 255.
    @discardableResult
    func revoke(_ arguments: [String], reason: String? = "test revocation", by: String? = nil,
                sourceLocation: SourceLocation = #_sourceLocation) async throws -> ProcessResult {
        var args = arguments
        if let reason { args += ["--reason", reason] }
        if let by { args += ["--by", by] }
        let result = try await run(["revoke"], args)
        try await expectKRLLoadable(krlFile, after: result, sourceLocation: sourceLocation)
        return result
    }

    /// Revocation that must succeed.
    @discardableResult
    func revokeChecked(_ arguments: [String], reason: String = "test revocation",
                       sourceLocation: SourceLocation = #_sourceLocation) async throws -> ProcessResult {
        let result = try await revoke(arguments, reason: reason, sourceLocation: sourceLocation)
        guard result.succeeded else { throw SubprocessError.failed(result) }
        return result
    }

    func list(_ arguments: [String] = []) async throws -> [ListedCertificate] {
        let result = try await runChecked(["list"], ["--json"] + arguments)
        do {
            return try JSONDecoder().decode([ListedCertificate].self, from: result.stdout)
        } catch {
            throw ParseError("cannot decode `sshca list --json` (\(error)):\n\(result)")
        }
    }

    func auditList() async throws -> [AuditListEntry] {
        let result = try await runChecked(["audit", "list"], ["--json"])
        do {
            return try JSONDecoder().decode([AuditListEntry].self, from: result.stdout)
        } catch {
            throw ParseError("cannot decode `sshca audit list --json` (\(error)):\n\(result)")
        }
    }

    /// `sshca audit verify` (exit status and output, not checked).
    func auditVerify() async throws -> ProcessResult {
        try await run(["audit", "verify"])
    }

    /// The head hash printed by a successful `sshca audit verify`.
    func auditHead() async throws -> String {
        let result = try await auditVerify()
        guard result.succeeded, let head = Self.word(after: "head ", in: result.stdoutText) else {
            throw SubprocessError.failed(result)
        }
        return head
    }

    /// The KRL file parsed by our strict parser.
    func publishedKRL() throws -> KRL {
        try KRL.parse(Array(try Data(contentsOf: krlFile))).krl
    }

    /// Sets `[krl] sign = true|false` in sshca.toml.
    func setSignKRL(_ sign: Bool) throws {
        let text = try readText(configFile)
        let replaced = text.replacingOccurrences(of: "sign = \(!sign)", with: "sign = \(sign)")
        guard replaced.contains("sign = \(sign)") else { throw ParseError("no `sign =` line in \(configFile.path):\n\(text)") }
        try writeText(replaced, to: configFile)
    }

    static func word(after marker: String, in text: String) -> String? {
        guard let range = text.range(of: marker) else { return nil }
        return String(text[range.upperBound...].prefix(while: { !$0.isWhitespace }))
    }
}

/// Acceptance item 9: the KRL at `path` is one OpenSSH loads (`ssh-keygen -Q` exits 0 or 1).
func expectKRLLoadable(_ krl: URL, after command: ProcessResult? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let probe = try await krlProbeKey()
    let check = try await runProcess("ssh-keygen", ["-Q", "-f", krl.path, probe.path], environment: SSHKeygen.environment)
    #expect(!check.terminatedBySignal && (check.exitCode == 0 || check.exitCode == 1),
            "ssh-keygen cannot load \(krl.path) \(command.map { "after\n\($0)" } ?? ""):\n\(check)",
            sourceLocation: sourceLocation)
}

private let probeKeys = AsyncCache<String, URL>()

/// A public key no test revokes, to probe KRL files with.
func krlProbeKey() async throws -> URL {
    try await probeKeys.value(for: "probe") {
        let dir = sharedFixtureDirectory.child("ledger-probe")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return try await SSHKeygen.generate(.ed25519, at: dir.child("probe"), comment: "probe").publicKey
    }
}

/// A fresh Ed25519 key pair made by ssh-keygen at `directory/name`.
func makeUserKey(_ directory: URL, _ name: String) async throws -> KeyPair {
    try await SSHKeygen.generate(.ed25519, at: directory.child(name), comment: name)
}

/// `ssh-keygen -Q -f KRL FILE`: true when revoked (exit 1), false when not (exit 0); anything
/// else is an error.
func sshKeygenRevoked(krl: URL, file: URL) async throws -> Bool {
    let result = try await runProcess("ssh-keygen", ["-Q", "-f", krl.path, file.path], environment: SSHKeygen.environment)
    switch (result.terminatedBySignal, result.exitCode) {
    case (false, 0): return false
    case (false, 1): return true
    default: throw SubprocessError.failed(result)
    }
}

/// `sshca krl check --krl KRL FILE`: true when revoked (exit 1), false when not (exit 0).
func sshcaRevoked(krl: URL, file: URL) async throws -> Bool {
    let result = try await SSHCA.run(["krl", "check", "--krl", krl.path, file.path])
    switch (result.terminatedBySignal, result.exitCode) {
    case (false, 0): return false
    case (false, 1): return true
    default: throw SubprocessError.failed(result)
    }
}

/// Replaces `destination` atomically (temp file in the same directory, then rename), as a
/// deployment must do for sshd's RevokedKeys.
func installAtomically(_ source: URL, to destination: URL) throws {
    let data = try Data(contentsOf: source)
    try installAtomically(data, to: destination)
}

func installAtomically(_ data: Data, to destination: URL) throws {
    let temporary = destination.deletingLastPathComponent().child(".\(destination.lastPathComponent).\(UUID().uuidString).tmp")
    try data.write(to: temporary)
    guard rename(temporary.path, destination.path) == 0 else {
        let message = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: temporary)
        throw ParseError("rename \(temporary.path) -> \(destination.path): \(message)")
    }
}

func makeDirectory(_ url: URL) throws -> URL {
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The first two fields of an OpenSSH line (type and base64), for comparisons without comments.
func typeAndBlob(_ line: String) -> String { keyTypeAndBlob(line) }
