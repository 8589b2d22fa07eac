@testable import Common
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
import SSHFormat
import SSHCrypto
@testable import Authority

private func listing(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
}

@Suite("Files and key files")
struct FilesTests {
    @Test("writeAtomically writes the content with the mode", arguments: [mode_t(0o600), 0o644, 0o640, 0o400])
    func writeAtomically(mode: mode_t) throws {
        let dir = try TempDir()
        let path = dir.file("out.txt")
        for durability in [Files.Durability.synced, .renameOnly] {
            try? FileManager.default.removeItem(atPath: path)
            try Files.writeAtomically(path, Array("hello\n".utf8), mode: mode, durability: durability)
            #expect(try dir.readText("out.txt") == "hello\n")
            #expect(Files.mode(path) == mode)
            #expect(listing(dir.path) == ["out.txt"])
        }
    }

    @Test func writeAtomicallyReplacesAndKeepsNoTempFiles() throws {
        let dir = try TempDir()
        let path = dir.file("krl")
        try dir.write("krl", "old contents that are longer\n", mode: 0o600)
        try Files.writeAtomically(path, Array("new\n".utf8), mode: 0o644)
        #expect(try dir.readText("krl") == "new\n")
        #expect(Files.mode(path) == 0o644)
        try Files.writeAtomically(path, [], mode: 0o644)
        #expect(try dir.read("krl").isEmpty)
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0) }
        try Files.writeAtomically(path, big, mode: 0o644)
        #expect(try dir.read("krl") == Data(big))
        #expect(listing(dir.path) == ["krl"])
    }

    @Test func failuresLeaveNoTempFilesAndTheOldFile() throws {
        let dir = try TempDir()
        // Missing directory: nothing can be created.
        let missing = authorityError { try Files.writeAtomically(dir.file("no/such/dir/file"), [1], mode: 0o644) }
        #expect(missing?.code == .io)
        #expect(listing(dir.path).isEmpty)

        // The target is a directory: the temp file is written, the rename fails, the temp file goes.
        try FileManager.default.createDirectory(atPath: dir.file("target"), withIntermediateDirectories: false)
        try dir.write("target/inside", "keep\n")
        let isDir = authorityError { try Files.writeAtomically(dir.file("target"), Array("x".utf8), mode: 0o644) }
        #expect(isDir?.code == .io)
        #expect(listing(dir.path) == ["target"])
        #expect(try dir.readText("target/inside") == "keep\n")

        // A failing check: the old file stays, the temp file goes, the check saw the full content.
        try dir.write("krl", "old\n", mode: 0o644)
        let seen = SeenBox()
        let checked = authorityError {
            try Files.writeAtomically(dir.file("krl"), Array("new content\n".utf8), mode: 0o644, check: { (temp: String) throws(SSHCAError) in
                seen.value = (try? String(contentsOfFile: temp, encoding: .utf8)) ?? ""
                seen.path = temp
                throw SSHCAError(.io, "check failed")
            })
        }
        #expect(checked?.reason == "check failed")
        #expect(seen.value == "new content\n")
        #expect(Files.parentDirectory(of: seen.path) == dir.path)
        #expect(Files.baseName(of: seen.path).hasPrefix(".krl.tmp-"))
        #expect(try dir.readText("krl") == "old\n")
        #expect(listing(dir.path) == ["krl", "target"])
    }

    @Test func createExclusive() throws {
        let dir = try TempDir()
        let path = dir.file("key")
        try Files.createExclusive(path, Array("secret".utf8), mode: 0o600)
        #expect(Files.mode(path) == 0o600)
        #expect(try dir.readText("key") == "secret")
        let again = authorityError { try Files.createExclusive(path, Array("other".utf8), mode: 0o600) }
        #expect(again?.code == .home)
        #expect(try dir.readText("key") == "secret")
        #expect(authorityError { try Files.createExclusive(dir.file("none/key"), [1], mode: 0o600) }?.code == .io)
    }

    @Test func reads() throws {
        let dir = try TempDir()
        let missing = authorityError { _ = try Files.read(dir.file("nope"), what: "thing") }
        #expect(missing?.code == .io)
        #expect(missing?.reason.contains("does not exist") == true)
        #expect(missing?.reason.contains("thing") == true)
        let directory = authorityError { _ = try Files.read(dir.path) }
        #expect(directory?.reason.contains("directory") == true)
        try dir.write("big", Data(count: 1001))
        #expect(try Files.read(dir.file("big"), maximumBytes: 1001).count == 1001)
        #expect(authorityError { _ = try Files.read(dir.file("big"), maximumBytes: 1000) }?.code == .badInput)
        try dir.write("binary", Data([0xff, 0xfe, 0x00]))
        #expect(authorityError { _ = try Files.readText(dir.file("binary")) }?.code == .badInput)
        try dir.write("text", "grüße\n")
        #expect(try Files.readText(dir.file("text")) == "grüße\n")
        #expect(Files.exists(dir.file("text")) && !Files.exists(dir.file("nope")))
        #expect(Files.isDirectory(dir.path) && !Files.isDirectory(dir.file("text")))
        #expect(Files.mode(dir.file("nope")) == nil)
    }

    @Test func makeDirectoryAndPaths() throws {
        let dir = try TempDir()
        try Files.makeDirectory(dir.file("a/b/c"), mode: 0o700)
        #expect(Files.isDirectory(dir.file("a/b/c")))
        #expect(Files.mode(dir.file("a/b/c")) == 0o700)
        try Files.makeDirectory(dir.file("a/b/c"), mode: 0o700) // exists: fine
        try dir.write("file", "x")
        #expect(authorityError { try Files.makeDirectory(dir.file("file/sub"), mode: 0o700) }?.code == .io)
        #expect(Files.parentDirectory(of: "/srv/ca/key") == "/srv/ca")
        #expect(Files.parentDirectory(of: "/key") == "/")
        #expect(Files.parentDirectory(of: "key") == ".")
        #expect(Files.baseName(of: "/srv/ca/key") == "key")
        #expect(Files.baseName(of: "key") == "key")
    }

    @Test func certificatePaths() {
        #expect(KeyFiles.certificatePath(forKey: "/home/a/.ssh/id_ed25519.pub") == "/home/a/.ssh/id_ed25519-cert.pub")
        #expect(KeyFiles.certificatePath(forKey: "id_rsa") == "id_rsa-cert.pub")
        #expect(KeyFiles.certificatePath(forKey: "key.pub.txt") == "key.pub.txt-cert.pub")
    }

    @Test func writeAndReadCertificates() throws {
        let ca = try PrivateKey.generate(.ed25519)
        let issuer = Issuer(signer: OpenSSLSigner(key: ca), configuration: Configuration())
        let subject = try PrivateKey.generate(.ed25519).publicKey
        let certificate = try issuer.issue(CertificateRequest(publicKey: subject, keyID: "k", principals: ["p"]), now: 1_900_000_000)
        let dir = try TempDir()
        let path = dir.file("id-cert.pub")
        try KeyFiles.writeCertificate(certificate, comment: "me@host", to: path)
        #expect(Files.mode(path) == 0o644)
        let text = try dir.readText("id-cert.pub")
        #expect(text == certificate.openSSHLine(comment: "me@host") + "\n")
        #expect(try KeyFiles.parseCertificate(Array(text.utf8), source: path) == certificate)
        let notText = authorityError { _ = try KeyFiles.parseCertificate([0xff, 0xfe], source: "x") }
        #expect(notText?.code == .badInput)
        let plain = authorityError { _ = try KeyFiles.parseCertificate(Array(subject.openSSHLine().utf8), source: "the-file") }
        #expect(plain?.reason.hasPrefix("the-file: ") == true)
        #expect(listing(dir.path) == ["id-cert.pub"])
    }

    @Test func readPublicKeys() throws {
        let dir = try TempDir()
        let line = try sshKeygenKey(in: dir, name: "id", type: "ed25519", comment: "me@laptop")
        let parsed = try KeyFiles.readPublicKey(dir.file("id.pub"))
        #expect(parsed.comment == "me@laptop")
        #expect(parsed.key.openSSHLine(comment: "me@laptop") == line)
        let priv = authorityError { _ = try KeyFiles.readPublicKey(dir.file("id")) }
        #expect(priv?.code == .badInput)
        #expect(priv?.reason.hasPrefix(dir.file("id") + ": ") == true)
        #expect(priv?.reason.contains("private key") == true)
        try dir.write("bin", Data([0xc3, 0x28]))
        #expect(authorityError { _ = try KeyFiles.readPublicKey(dir.file("bin")) }?.code == .badInput)
        try dir.write("huge", Data(repeating: 0x23, count: PublicKeyText.maximumLength + 1))
        #expect(authorityError { _ = try KeyFiles.readPublicKey(dir.file("huge")) }?.code == .badInput)
    }
}

final class SeenBox: @unchecked Sendable {
    var value = ""
    var path = ""
}
