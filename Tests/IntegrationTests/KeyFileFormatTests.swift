import Common
import Foundation
import Testing
import TestSupport

@Suite("Public key file formats and certificate output")
struct KeyFileFormatTests {
    /// The comment of an OpenSSH one-line key or certificate (everything after the base64).
    private func comment(of line: String) -> String? {
        let trimmed = line.trimmingCharacters(in: .newlines)
        let parts = trimmed.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        return parts.count == 3 ? String(parts[2]) : nil
    }

    @Test("a CRLF-terminated key file is accepted and the certificate is a clean LF line")
    func crlfPublicKeyFile() async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let key = try await Fixtures.copyUserKey(.ecdsa256, into: dir, name: "id_crlf")
            let original = try readText(key.publicKey)
            try writeText(keyTypeAndBlob(original) + " alice@laptop\r\n", to: key.publicKey)

            let result = try await sshcaSign(home: home, ["--key-id", "crlf", "--principals", "alice"], publicKey: key.publicKey)
            try #require(result.succeeded, "\(result)")
            let certText = try readText(key.certificate)
            #expect(!certText.contains("\r"), "carriage return copied into the certificate: \(certText.debugDescription)")
            #expect(certText.hasSuffix("\n") && certText.filter { $0 == "\n" }.count == 1, "\(certText.debugDescription)")
            #expect(comment(of: certText) == "alice@laptop", "\(certText.debugDescription)")
            let listing = try await SSHKeygen.listCertificate(key.certificate)
            #expect(listing.publicKeyFingerprint == (try await SSHKeygen.fingerprint(key.publicKey)))
        }
    }

    @Test("the certificate keeps the key's comment, like ssh-keygen -s")
    func commentMatchesSSHKeygen() async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let keyComment = "Alice Smith (laptop) alice@example.com"
            let key = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "id_sshca")
            try writeText(keyTypeAndBlob(try readText(key.publicKey)) + " " + keyComment + "\n", to: key.publicKey)
            let reference = try key.copy(to: dir.child("ref-dir").creatingDirectory(), name: "id_ref")

            let result = try await sshcaSign(home: home, ["--key-id", "comment", "--principals", "alice"], publicKey: key.publicKey)
            try #require(result.succeeded, "\(result)")
            let referenceCA = try await Fixtures.plainKey("reference-ca", ["-t", "ed25519"])
            try await SSHKeygen.sign(caKey: referenceCA.privateKey, publicKey: reference.publicKey, keyID: "comment", principals: ["alice"])

            let ours = try readText(key.certificate)
            let theirs = try readText(reference.certificate)
            #expect(comment(of: ours) == keyComment, "\(ours.debugDescription)")
            #expect(comment(of: ours) == comment(of: theirs), "sshca: \(ours.debugDescription)\nssh-keygen: \(theirs.debugDescription)")
            #expect(ours.split(separator: " ").first == theirs.split(separator: " ").first)
        }
    }

    @Test("an RFC 4716 file written by ssh-keygen -e is accepted", arguments: [UserKeyType.ed25519, .rsa2048, .ecdsa384])
    func rfc4716FromSSHKeygen(keyType: UserKeyType) async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let key = try await Fixtures.copyUserKey(keyType, into: dir, name: "id_src")
            let exported = try await runChecked("ssh-keygen", ["-e", "-f", key.publicKey.path])
            #expect(exported.stdoutText.hasPrefix("---- BEGIN SSH2 PUBLIC KEY ----"))
            let rfc = dir.child("k_rfc.pub")
            try writeData(exported.stdout, to: rfc)
            let result = try await sshcaSign(home: home, ["--key-id", "rfc4716", "--principals", "alice"], publicKey: rfc)
            try #require(result.succeeded, "\(result)")
            let cert = dir.child("k_rfc-cert.pub")
            try #require(fileExists(cert), "expected \(cert.lastPathComponent)")
            let listing = try await SSHKeygen.listCertificate(cert)
            #expect(listing.publicKeyFingerprint == (try await SSHKeygen.fingerprint(key.publicKey)))
            #expect(listing.certificateTypeName == keyType.certificateTypeName)
        }
    }

    @Test("--output FILE and --output - put the certificate where asked")
    func outputOption() async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let keys = try dir.child("keys").creatingDirectory()
            let key = try await Fixtures.copyUserKey(.ed25519, into: keys, name: "id_user")
            let args = ["--key-id", "output", "--principals", "alice"]

            let target = dir.child("elsewhere.cert")
            let toFile = try await sshcaSign(home: home, args + ["--output", target.path], publicKey: key.publicKey)
            try #require(toFile.succeeded, "\(toFile)")
            #expect(fileExists(target))
            #expect(!fileExists(key.certificate), "--output FILE must not also write NAME-cert.pub")
            let listing = try await SSHKeygen.listCertificate(target)
            #expect(listing.keyID == "output")

            let before = try DirectorySnapshot(keys)
            let toStdout = try await sshcaSign(home: home, args + ["--output", "-"], publicKey: key.publicKey)
            try #require(toStdout.succeeded, "\(toStdout)")
            #expect(try DirectorySnapshot(keys) == before, "--output - wrote a file")
            let line = toStdout.stdoutText
            #expect(line.hasPrefix(UserKeyType.ed25519.certificateTypeName + " "), "\(toStdout)")
            let piped = dir.child("piped-cert.pub")
            try writeText(line, to: piped)
            let pipedListing = try await SSHKeygen.listCertificate(piped)
            #expect(pipedListing.keyID == "output")
            #expect(pipedListing.publicKeyFingerprint == (try await SSHKeygen.fingerprint(key.publicKey)))
        }
    }
}

extension URL {
    /// Creates this directory (and parents) and returns it.
    func creatingDirectory() throws -> URL {
        try FileManager.default.createDirectory(at: self, withIntermediateDirectories: true)
        return self
    }
}
