@testable import Common
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
import TestSupport
import SSHFormat
import SSHCrypto
@testable import Authority

/// Counts how often a passphrase was asked for.
final class PassphraseCounter: Sendable {
    let count = Atomic<Int>(0)
    let passphrase: [UInt8]
    init(_ passphrase: String) { self.passphrase = Array(passphrase.utf8) }
    var source: PassphraseSource {
        PassphraseSource { () throws(SSHCAError) -> [UInt8] in
            self.count.add(1, ordering: .relaxed)
            return self.passphrase
        }
    }
    var asked: Int { count.load(ordering: .relaxed) }
}

private func mode(_ path: String) -> mode_t? { Files.mode(path) }

private func contents(of dir: String) throws -> [String: Data] {
    var out: [String: Data] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
        out[name] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))
    }
    return out
}

@Suite("CA home")
struct CAHomeTests {
    static let fiveFiles: [(String, mode_t)] = [
        ("sshca.toml", 0o644), ("user_ca.key", 0o600), ("user_ca.pub", 0o644), ("host_ca.key", 0o600), ("host_ca.pub", 0o644),
    ]

    @Test func createMakesTheFilesWithTheirModes() async throws {
        let dir = try TempDir()
        let path = dir.file("nested/ca")
        let home = try await CAHome.create(at: path, .init(keyType: .ed25519))
        #expect(home.path == path)
        #expect(mode(path) == 0o700)
        for (name, expected) in Self.fiveFiles {
            #expect(mode(path + "/" + name) == expected, "\(name)")
        }
        #expect(home.isInitialized)
        var expected = Configuration()
        expected.roles = Configuration.defaultRoles
        #expect(try home.configuration() == expected)
        let user = try home.publicKey(.user), host = try home.publicKey(.host)
        #expect(user != host)
        #expect(user.typeName == "ssh-ed25519")
        #expect(try dir.readText("nested/ca/user_ca.pub") == user.openSSHLine(comment: "sshca-user-ca") + "\n")
        #expect(try dir.readText("nested/ca/host_ca.pub") == host.openSSHLine(comment: "sshca-host-ca") + "\n")
        #expect(try dir.readText("nested/ca/user_ca.key").hasPrefix("-----BEGIN PRIVATE KEY-----"))
        // The private keys belong to the public ones, and no passphrase is asked for.
        let counter = PassphraseCounter("unused")
        #expect(try home.privateKey(.user, passphrase: counter.source).publicKey == user)
        #expect(try home.privateKey(.host, passphrase: counter.source).publicKey == host)
        #expect(counter.asked == 0)
        // ssh-keygen reads the public key files.
        let fingerprint = try run("ssh-keygen", ["-l", "-f", home.publicKeyPath(.user)]).stdoutText
        #expect(fingerprint.contains(user.fingerprint))
        // The signer signs for the user CA key.
        let signer = try home.signer(.user, passphrase: .none, configuration: home.configuration())
        #expect(signer.publicKey == user)
        #expect(user.verify(try signer.sign([1, 2, 3]), over: [1, 2, 3]) == .valid)
    }

    @Test func ecdsaHome() async throws {
        let dir = try TempDir()
        let home = try await CAHome.create(at: dir.file("ca"), .init(keyType: .ecdsaP384))
        #expect(try home.publicKey(.user).typeName == "ecdsa-sha2-nistp384")
        #expect(try home.privateKey(.host, passphrase: .none).publicKey == home.publicKey(.host))
    }

    @Test func createRefusesAnExistingCAAndLeavesItAlone() async throws {
        let dir = try TempDir()
        let path = dir.file("ca")
        _ = try await CAHome.create(at: path, .init())
        let before = try contents(of: path)
        let error = await authorityError { _ = try await CAHome.create(at: path, .init()) }
        #expect(error?.code == .home)
        #expect(error?.reason.contains("refusing to overwrite") == true)
        #expect(try contents(of: path) == before)
        for (name, expected) in Self.fiveFiles {
            #expect(mode(path + "/" + name) == expected, "\(name)")
        }
    }

    @Test("create refuses when any one CA file is already there", arguments: ["sshca.toml", "user_ca.key", "user_ca.pub", "host_ca.key", "host_ca.pub"])
    func createRefusesAnyLeftover(name: String) async throws {
        let dir = try TempDir()
        try FileManager.default.createDirectory(atPath: dir.file("ca"), withIntermediateDirectories: true)
        try dir.write("ca/" + name, "leftover\n", mode: 0o600)
        let error = await authorityError { _ = try await CAHome.create(at: dir.file("ca"), .init()) }
        #expect(error?.code == .home)
        #expect(error?.reason.contains(name) == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("ca")) == [name])
        #expect(try dir.readText("ca/" + name) == "leftover\n")
    }

    @Test func shortPassphraseIsRefusedBeforeAnythingIsWritten() async throws {
        let dir = try TempDir()
        let error = await authorityError { _ = try await CAHome.create(at: dir.file("ca"), .init(passphrase: Array("short".utf8))) }
        #expect(error?.code == .badInput)
        #expect(!FileManager.default.fileExists(atPath: dir.file("ca/sshca.toml")))
    }

    @Test("a private key readable by others is refused", arguments: [mode_t(0o644), 0o640, 0o604, 0o660])
    func unsafePrivateKeyMode(unsafe: mode_t) async throws {
        let dir = try TempDir()
        let home = try await CAHome.create(at: dir.file("ca"), .init())
        chmod(home.privateKeyPath(.user), unsafe)
        let error = authorityError { _ = try home.privateKey(.user, passphrase: .none) }
        #expect(error?.code == .unsafeFile)
        #expect(error?.reason.contains("chmod 600 \(home.privateKeyPath(.user))") == true)
        #expect(error?.isInputError == false)
        // The signer goes through the same check.
        #expect(authorityError { _ = try home.signer(.user, passphrase: .none, configuration: Configuration()) }?.code == .unsafeFile)
        // 0400 is fine, and the host key was never touched.
        chmod(home.privateKeyPath(.user), 0o400)
        #expect(try home.privateKey(.user, passphrase: .none).publicKey == home.publicKey(.user))
        #expect(try home.privateKey(.host, passphrase: .none).publicKey == home.publicKey(.host))
    }

    @Test func encryptedHomeNeedsThePassphrase() async throws {
        let dir = try TempDir()
        let passphrase = "correct horse battery staple"
        let home = try await CAHome.create(at: dir.file("ca"), .init(passphrase: Array(passphrase.utf8)))
        let pem = try dir.readText("ca/user_ca.key")
        #expect(pem.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        #expect(PrivateKey.isEncrypted(pem: pem))

        let none = authorityError { _ = try home.privateKey(.user, passphrase: .none) }
        #expect(none?.code == .key)
        #expect(none?.reason.contains("passphrase") == true)

        let wrong = PassphraseCounter("not the passphrase")
        let wrongError = authorityError { _ = try home.privateKey(.user, passphrase: wrong.source) }
        #expect(wrongError?.code == .key)
        #expect(wrongError?.reason.contains("wrong passphrase") == true)
        #expect(wrong.asked == 1)

        let right = PassphraseCounter(passphrase)
        #expect(try home.privateKey(.user, passphrase: right.source).publicKey == home.publicKey(.user))
        #expect(right.asked == 1)

        // From a file: only the first line counts, CRLF tolerated.
        let passFile = try dir.write("pass", passphrase + "\r\nsecond line\n")
        #expect(try home.privateKey(.host, passphrase: .file(passFile)).publicKey == home.publicKey(.host))
        #expect(try PassphraseSource.readPassphraseFile(passFile) == Array(passphrase.utf8))
        let empty = try dir.write("empty", "\nsecret\n")
        #expect(authorityError { _ = try PassphraseSource.readPassphraseFile(empty) }?.code == .badInput)
        #expect(authorityError { _ = try PassphraseSource.readPassphraseFile(dir.file("missing")) }?.code == .io)
    }

    @Test func mismatchedKeyPairIsDetected() async throws {
        let dir = try TempDir()
        let home = try await CAHome.create(at: dir.file("ca"), .init())
        // Swap the user CA's public key for the host CA's.
        let hostLine = try dir.readText("ca/host_ca.pub")
        try dir.write("ca/user_ca.pub", hostLine, mode: 0o644)
        let error = authorityError { _ = try home.privateKey(.user, passphrase: .none) }
        #expect(error?.code == .home)
        #expect(error?.reason.contains("does not match") == true)
        #expect(authorityError { _ = try home.exportPrivateKey(.user, passphrase: .none) }?.code == .home)
    }

    @Test func damagedOrMissingFiles() async throws {
        let dir = try TempDir()
        let home = try await CAHome.create(at: dir.file("ca"), .init())
        try dir.write("ca/user_ca.pub", "ssh-ed25519 AAAA\n", mode: 0o644)
        let damaged = authorityError { _ = try home.publicKey(.user) }
        #expect(damaged?.code == .home)
        #expect(damaged?.reason.contains("damaged") == true)
        try FileManager.default.removeItem(atPath: home.privateKeyPath(.host))
        #expect(authorityError { _ = try home.privateKey(.host, passphrase: .none) }?.code == .home)

        let empty = CAHome(path: dir.file("nothing"))
        #expect(!empty.isInitialized)
        let notThere = authorityError { _ = try empty.configuration() }
        #expect(notThere?.code == .home)
        #expect(notThere?.reason.contains("sshca init") == true)
        #expect(authorityError { _ = try empty.publicKey(.user) }?.code == .home)

        try dir.write("ca/sshca.toml", "[ca]\nuser_key = \"disk\"\n", mode: 0o644)
        let config = authorityError { _ = try home.configuration() }
        #expect(config?.code == .badConfig)
        #expect(config?.reason.hasPrefix(home.configurationPath + ":2:") == true)
    }

    @Test func exportedPrivateKeyIsAcceptedBySSHKeygen() async throws {
        let dir = try TempDir()
        let home = try await CAHome.create(at: dir.file("ca"), .init(passphrase: Array("export passphrase".utf8)))
        for kind in CAKind.allCases {
            let text = try home.exportPrivateKey(kind, passphrase: PassphraseCounter("export passphrase").source)
            #expect(text.hasPrefix("-----BEGIN OPENSSH PRIVATE KEY-----"))
            let path = try dir.write("\(kind.rawValue)-export", text, mode: 0o600)
            let derived = try run("ssh-keygen", ["-y", "-f", path]).stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(derived == (try home.publicKey(kind)).openSSHLine(comment: "sshca-\(kind.rawValue)-ca"))
        }
    }

    @Test func agentHeldKeys() async throws {
        let dir = try TempDir()
        let agentKey = try PrivateKey.generate(.ed25519).publicKey
        let home = try await CAHome.create(at: dir.file("ca"), .init(userKeyInAgent: agentKey))
        #expect(!FileManager.default.fileExists(atPath: home.privateKeyPath(.user)))
        #expect(FileManager.default.fileExists(atPath: home.privateKeyPath(.host)))
        #expect(try home.publicKey(.user) == agentKey)
        let configuration = try home.configuration()
        #expect(configuration.userKeyStorage == .agent)
        #expect(configuration.hostKeyStorage == .file)
        let export = authorityError { _ = try home.exportPrivateKey(.user, passphrase: .none) }
        #expect(export?.code == .home)
        #expect(export?.reason.contains("ssh-agent") == true)

        // Unsuitable agent keys are refused before anything is written.
        let sk = try PublicKeyText(parsing: sshKeygenKey(in: dir, name: "sk", type: "ed25519-sk")).key
        let rsa1024 = try PublicKeyText(parsing: sshKeygenKey(in: dir, name: "rsa1024", type: "rsa", bits: 1024)).key
        for (key, name) in [(sk, "sk"), (rsa1024, "rsa")] {
            let error = await authorityError { _ = try await CAHome.create(at: dir.file("ca-\(name)"), .init(hostKeyInAgent: key)) }
            #expect(error?.code == .badInput, "\(name)")
            #expect(!FileManager.default.fileExists(atPath: dir.file("ca-\(name)/sshca.toml")))
        }
        #expect(CAHome.Creation(userKeyInAgent: agentKey, hostKeyInAgent: agentKey).needsPassphraseDecision == false)
        #expect(CAHome.Creation(userKeyInAgent: agentKey).needsPassphraseDecision)
    }

    @Test func resolveOrder() {
        #expect(CAHome.resolve("/explicit", environment: ["SSHCA_HOME": "/env"]).path == "/explicit")
        #expect(CAHome.resolve(nil, environment: ["SSHCA_HOME": "/env"]).path == "/env")
        #expect(CAHome.resolve("", environment: ["SSHCA_HOME": "/env"]).path == "/env")
        #expect(CAHome.resolve(nil, environment: [:]).path == "./ca-data")
        #expect(CAHome.resolve(nil, environment: ["SSHCA_HOME": ""]).path == "./ca-data")
        let home = CAHome(path: "/srv/ca")
        #expect(home.configurationPath == "/srv/ca/sshca.toml")
        #expect(home.privateKeyPath(.host) == "/srv/ca/host_ca.key")
        #expect(home.publicKeyPath(.user) == "/srv/ca/user_ca.pub")
        #expect(CAKind.user.certificateType == .user && CAKind.host.certificateType == .host)
    }
}
