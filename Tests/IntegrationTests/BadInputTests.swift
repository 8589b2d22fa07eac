import Common
import Foundation
import Testing
import TestSupport

/// Bad input must fail with the documented exit code, an "error: " message naming the problem,
/// and no certificate written.
@Suite("sshca refuses bad input")
struct BadInputTests {
    enum BadKeyFile: String, CaseIterable, Sendable, CustomStringConvertible {
        case openSSHPrivateKey, pemPrivateKey, pkcs8PrivateKey, certificate, truncatedBase64, invalidBase64,
            typeNameMismatch, splitOverTwoLines, twoKeys, dsaKey, rsa1024, emptyFile, nonexistentFile
        var description: String { rawValue }

        /// Accepted exit codes: 65 for bad data. A missing file is not specified by the contract
        /// beyond "non-zero"; 1 (runtime), 64 (bad argument) and 65 are all reasonable.
        var exitCodes: Set<Int32> { self == .nonexistentFile ? [1, 64, 65] : [65] }

        /// At least one of these must appear in stderr (case-insensitive).
        var mentions: [String] {
            switch self {
            case .openSSHPrivateKey, .pemPrivateKey, .pkcs8PrivateKey: return ["private"]
            case .certificate: return ["certificate"]
            case .truncatedBase64: return ["truncated", "too short", "incomplete", "unexpected end", "end of data", "malformed", "length"]
            case .invalidBase64: return ["base64"]
            case .typeNameMismatch: return ["mismatch", "match", "disagree", "differ", "inconsistent", "ssh-ed25519"]
            case .splitOverTwoLines: return ["line", "base64", "malformed", "truncated", "too short", "incomplete"]
            case .twoKeys: return ["more than one", "multiple", "two keys", "2 keys", "one key", "single", "several", "extra"]
            case .dsaKey: return ["dsa", "ssh-dss"]
            case .rsa1024: return ["1024", "2048", "too small", "too short", "weak"]
            case .emptyFile: return ["empty", "no key", "no public key"]
            case .nonexistentFile: return ["no such file", "not found", "does not exist", "doesn't exist", "missing.pub"]
            }
        }
    }

    /// Writes the bad input into `keys` and returns the path to pass to `sshca sign`.
    private func makeInput(_ kind: BadKeyFile, in keys: URL, home: URL) async throws -> URL {
        let good = try await Fixtures.copyUserKey(.ed25519, into: keys, name: "id_good")
        let goodLine = try readText(good.publicKey).trimmingCharacters(in: .whitespacesAndNewlines)
        let fields = goodLine.split(separator: " ").map(String.init)
        let bad = keys.child("bad.pub")
        switch kind {
        case .openSSHPrivateKey:
            return good.privateKey
        case .pemPrivateKey:
            let key = try await SSHKeygen.generate(["-t", "ecdsa", "-b", "256", "-m", "PEM"], at: keys.child("id_pem"), typeName: "ecdsa")
            #expect(try readText(key.privateKey).hasPrefix("-----BEGIN EC PRIVATE KEY-----"))
            return key.privateKey
        case .pkcs8PrivateKey:
            try copyItem(home.child("user_ca.key"), to: keys.child("pkcs8.pub"))
            return keys.child("pkcs8.pub")
        case .certificate:
            let ca = try await Fixtures.plainKey("bad-input-ca", ["-t", "ed25519"])
            try await SSHKeygen.sign(caKey: ca.privateKey, publicKey: good.publicKey, keyID: "already", principals: ["alice"])
            return good.certificate
        case .truncatedBase64:
            let blob = try #require(Data(base64Encoded: fields[1]))
            try writeText("\(fields[0]) \(blob.prefix(blob.count - 12).base64EncodedString()) user@host\n", to: bad)
        case .invalidBase64:
            try writeText("\(fields[0]) AAAAC3NzaC1lZDI1NTE5!!!*not*base64*** user@host\n", to: bad)
        case .typeNameMismatch:
            try writeText("ssh-rsa \(fields[1]) user@host\n", to: bad)
        case .splitOverTwoLines:
            let b64 = fields[1]
            let mid = b64.index(b64.startIndex, offsetBy: b64.count / 2)
            try writeText("\(fields[0]) \(b64[..<mid])\n\(b64[mid...]) user@host\n", to: bad)
        case .twoKeys:
            let other = try await Fixtures.userKey(.ecdsa256)
            try writeText(goodLine + "\n" + (try readText(other.publicKey)), to: bad)
        case .dsaKey:
            let dsa = keys.child("id_dsa")
            let generated = try await runProcess("ssh-keygen", ["-q", "-t", "dsa", "-N", "", "-f", dsa.path])
            if generated.succeeded {
                try FileManager.default.moveItem(at: keys.child("id_dsa.pub"), to: bad)
            } else {
                // This ssh-keygen cannot make DSA keys: craft an ssh-dss blob (p, q, g, y).
                func mpint(_ bytes: [UInt8]) -> Data {
                    var d = Data([0, 0, 0, UInt8(bytes.count)])
                    d.append(contentsOf: bytes)
                    return d
                }
                var blob = sshStringEncoding("ssh-dss")
                blob.append(mpint([0x00] + [UInt8](repeating: 0xC3, count: 128)))
                blob.append(mpint([0x00] + [UInt8](repeating: 0x9B, count: 20)))
                blob.append(mpint([UInt8](repeating: 0x35, count: 128)))
                blob.append(mpint([UInt8](repeating: 0x47, count: 128)))
                try writeText("ssh-dss \(blob.base64EncodedString()) dsa@host\n", to: bad)
            }
        case .rsa1024:
            let rsa = try await SSHKeygen.generate(["-t", "rsa", "-b", "1024"], at: keys.child("id_rsa1024"), typeName: "rsa")
            return rsa.publicKey
        case .emptyFile:
            try writeText("", to: bad)
        case .nonexistentFile:
            return keys.child("missing.pub")
        }
        return bad
    }

    @Test("sign refuses a bad public key file", arguments: BadKeyFile.allCases)
    func signRejectsBadKeyFile(_ kind: BadKeyFile) async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let keys = dir.child("keys")
            try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
            let input = try await makeInput(kind, in: keys, home: home)
            let before = try DirectorySnapshot(keys)
            let result = try await sshcaSign(home: home, ["--key-id", "bad", "--principals", "alice"], publicKey: input)
            expectFailure(result, exitCodes: kind.exitCodes, mentions: kind.mentions)
            #expect(result.stdout.isEmpty, "nothing on stdout for a failure:\n\(result)")
            let after = try DirectorySnapshot(keys)
            #expect(after == before, "files changed: \(after.differences(from: before))")
        }
    }

    enum BadArguments: String, CaseIterable, Sendable, CustomStringConvertible {
        case tooManyPrincipals, principalWithSpace, principalWithControlCharacter, principalWithTab,
            emptyPrincipalList, emptyPrincipalInList, trailingComma, serialZero, validityGarbage,
            validityEndBeforeStart, hostWithForceCommand, hostWithSourceAddress, badSourceAddress, missingKeyID,
            missingPrincipals
        var description: String { rawValue }

        var arguments: [String] {
            let base = ["--key-id", "bad args"]
            switch self {
            case .tooManyPrincipals:
                return base + ["--principals", (1...257).map { "p\($0)" }.joined(separator: ",")]
            case .principalWithSpace: return base + ["--principals", "alice,bob smith"]
            case .principalWithControlCharacter: return base + ["--principals", "alice,bo\u{01}b"]
            case .principalWithTab: return base + ["--principals", "al\tice"]
            case .emptyPrincipalList: return base + ["--principals", ""]
            case .emptyPrincipalInList: return base + ["--principals", "alice,,bob"]
            case .trailingComma: return base + ["--principals", "alice,"]
            case .serialZero: return base + ["--principals", "alice", "--serial", "0"]
            case .validityGarbage: return base + ["--principals", "alice", "--validity", "garbage"]
            case .validityEndBeforeStart: return base + ["--principals", "alice", "--validity", "20300102:20300101"]
            case .hostWithForceCommand: return base + ["--principals", "web", "--host", "--force-command", "echo hi"]
            case .hostWithSourceAddress: return base + ["--principals", "web", "--host", "--source-address", "10.0.0.0/8"]
            case .badSourceAddress: return base + ["--principals", "alice", "--source-address", "10.0.0.300/8"]
            case .missingKeyID: return ["--principals", "alice"]
            case .missingPrincipals: return ["--key-id", "bad args"]
            }
        }

        /// Missing required options are usage errors (64); a bad option value is bad input (65).
        var exitCodes: Set<Int32> {
            switch self {
            case .missingKeyID, .missingPrincipals: return [64]
            default: return [65]
            }
        }

        var mentions: [String] {
            switch self {
            case .tooManyPrincipals: return ["256", "257", "too many"]
            case .principalWithSpace, .principalWithControlCharacter, .principalWithTab, .emptyPrincipalList,
                .emptyPrincipalInList, .trailingComma, .missingPrincipals:
                return ["principal"]
            case .serialZero: return ["serial"]
            case .validityGarbage, .validityEndBeforeStart: return ["validity", "garbage", "time", "date"]
            case .hostWithForceCommand: return ["force-command"]
            case .hostWithSourceAddress, .badSourceAddress: return ["source-address"]
            case .missingKeyID: return ["key-id", "key id"]
            }
        }
    }

    @Test("sign refuses bad arguments (exit 64 for usage, 65 for a bad value)", arguments: BadArguments.allCases)
    func signRejectsBadArguments(_ kind: BadArguments) async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let keys = dir.child("keys")
            try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
            let key = try await Fixtures.copyUserKey(.ed25519, into: keys, name: "id_user")
            let before = try DirectorySnapshot(keys)
            let result = try await sshcaSign(home: home, kind.arguments, publicKey: key.publicKey)
            expectFailure(result, exitCodes: kind.exitCodes, mentions: kind.mentions)
            let after = try DirectorySnapshot(keys)
            #expect(after == before, "files changed: \(after.differences(from: before))")
        }
    }

    @Test("256 principals (the maximum) are accepted")
    func maximumPrincipalCount() async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let key = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "id_user")
            let principals = (1...256).map { "p\($0)" }
            let result = try await sshcaSign(home: home, ["--key-id", "many", "--principals", principals.joined(separator: ",")], publicKey: key.publicKey)
            try #require(result.succeeded, "\(result)")
            let listing = try await SSHKeygen.listCertificate(key.certificate)
            #expect(listing.principals == principals)
        }
    }

    @Test("init refuses an existing CA home and leaves it byte-identical")
    func initTwiceRefuses() async throws {
        try await withTemporaryDirectory { dir in
            let home = dir.child("home")
            let first = try await sshcaInit(home: home)
            try #require(first.succeeded, "\(first)")
            let before = try DirectorySnapshot(home)
            #expect(before.entries.count >= 5, "\(before)")

            let again = try await sshcaInit(home: home)
            expectFailure(again, exitCodes: [1], mentions: [])
            #expect(try DirectorySnapshot(home) == before, "the home changed")

            let otherType = try await sshcaInit(home: home, keyType: .ecdsaP256, extra: ["--no-passphrase"])
            expectFailure(otherType, exitCodes: [1], mentions: [])
            #expect(try DirectorySnapshot(home) == before, "the home changed")
        }
    }

    @Test("sign refuses a CA private key readable by others, mentioning chmod 600")
    func insecureCAKeyPermissions() async throws {
        try await withTemporaryDirectory { dir in
            let home = dir.child("home")
            let created = try await sshcaInit(home: home)
            try #require(created.succeeded, "\(created)")
            let keys = dir.child("keys")
            try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
            let key = try await Fixtures.copyUserKey(.ed25519, into: keys, name: "id_user")
            let args = ["--key-id", "perm", "--principals", "alice"]

            try setMode(0o644, of: home.child("user_ca.key"))
            let before = try DirectorySnapshot(keys)
            let refused = try await sshcaSign(home: home, args, publicKey: key.publicKey)
            expectFailure(refused, exitCodes: [1, 65], mentions: ["chmod 600"])
            #expect(try DirectorySnapshot(keys) == before)

            try setMode(0o600, of: home.child("user_ca.key"))
            let accepted = try await sshcaSign(home: home, args, publicKey: key.publicKey)
            #expect(accepted.succeeded, "\(accepted)")
            #expect(fileExists(key.certificate))
        }
    }

    @Test("an encrypted CA key signs with the right passphrase file only")
    func encryptedCAKey() async throws {
        try await withTemporaryDirectory { dir in
            let passphrase = dir.child("passphrase")
            try writeText("correct horse battery staple", to: passphrase, mode: 0o600)
            let wrong = dir.child("wrong-passphrase")
            try writeText("incorrect horse", to: wrong, mode: 0o600)
            let home = dir.child("home")
            let created = try await sshcaInit(home: home, extra: ["--passphrase-file", passphrase.path])
            try #require(created.succeeded, "\(created)")
            let pem = try readText(home.child("user_ca.key"))
            #expect(pem.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"), "\(pem.prefix(50))")
            #expect(!pem.contains("-----BEGIN PRIVATE KEY-----"))
            #expect(try fileMode(home.child("user_ca.key")) == 0o600)

            let keys = dir.child("keys")
            try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
            let key = try await Fixtures.copyUserKey(.ed25519, into: keys, name: "id_user")
            let args = ["--key-id", "encrypted", "--principals", "alice"]
            let before = try DirectorySnapshot(keys)

            let refused = try await sshcaSign(home: home, args + ["--passphrase-file", wrong.path], publicKey: key.publicKey)
            expectFailure(refused, exitCodes: [1], mentions: ["wrong passphrase"])
            #expect(try DirectorySnapshot(keys) == before)

            let noPassphrase = try await sshcaSign(home: home, args, publicKey: key.publicKey, timeout: .seconds(20))
            #expect(!noPassphrase.succeeded && !noPassphrase.timedOut, "signed without a passphrase:\n\(noPassphrase)")
            #expect(hasErrorLine(noPassphrase), "\(noPassphrase)")
            #expect(try DirectorySnapshot(keys) == before)

            let viaOption = try await sshcaSign(home: home, args + ["--passphrase-file", passphrase.path], publicKey: key.publicKey)
            try #require(viaOption.succeeded, "\(viaOption)")
            let (info, inspect) = try await SSHCA.inspect(key.certificate)
            #expect(inspect.exitCode == 0 && info.signatureValid, "\(inspect)")
            #expect(info.signingCA.fingerprint == (try await SSHKeygen.fingerprint(home.child("user_ca.pub"))))

            try FileManager.default.removeItem(at: key.certificate)
            let viaEnvironment = try await sshcaSign(
                home: home, args, publicKey: key.publicKey, environment: ["SSHCA_PASSPHRASE_FILE": passphrase.path])
            #expect(viaEnvironment.succeeded, "\(viaEnvironment)")
            #expect(fileExists(key.certificate))
        }
    }
}
