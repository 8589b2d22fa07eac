import Common
import Foundation
import Testing
import TestSupport

/// What the client commands refuse before they talk to anyone or touch a file.
@Suite("client safety")
struct ClientSafetyTests {
    @Test("plain HTTP off this machine is refused; loopback is allowed")
    func plainHTTP() async throws {
        try await withTemporaryDirectory { dir in
            for url in ["http://192.0.2.1:8443", "http://ca.example.com", "http://[2001:db8::1]:8443"] {
                let result = try await SSHCA.run(["login", "--ca-url", url, "--user", "x"], environment: ["HOME": dir.path])
                #expect(result.exitCode == 65 && result.stderrText.contains("plain HTTP"), "\(url): \(result)")
            }
            // Loopback: refused for another reason (nothing listens), not for being HTTP.
            let local = try await SSHCA.run(["login", "--ca-url", "http://127.0.0.1:9", "--user", "x"], environment: ["HOME": dir.path])
            #expect(!local.succeeded && !local.stderrText.contains("plain HTTP") && local.stderrText.contains("cannot reach"), "\(local)")
        }
    }

    @Test("krl-sync from a URL needs the CA key to pin the KRL's signer")
    func krlSyncNeedsPin() async throws {
        try await withTemporaryDirectory { dir in
            let result = try await SSHCA.run(["host", "krl-sync", "--from", "http://127.0.0.1:9", "--to", dir.child("k.krl").path])
            #expect(result.exitCode == 65 && result.stderrText.contains("--ca-key"), "\(result)")
            #expect(!FileManager.default.fileExists(atPath: dir.child("k.krl").path))
        }
    }

    @Test("login and logout never overwrite or delete a key file that login did not write")
    func foreignKeyFile() async throws {
        try await withTemporaryDirectory { dir in
            let mine = try await SSHKeygen.generate(.ed25519, at: dir.child("id_ed25519"), comment: "me@laptop")
            let before = try readText(mine.privateKey)
            let logout = try await SSHCA.run(["logout", "--key-file", mine.privateKey.path])
            #expect(logout.exitCode == 65 && logout.stderrText.contains("not written by sshca login"), "\(logout)")
            let login = try await SSHCA.run(["login", "--ca-url", "http://127.0.0.1:9", "--user", "x", "--key-file", mine.privateKey.path])
            #expect(login.exitCode == 65 && login.stderrText.contains("not written by sshca login"), "\(login)")
            #expect(try readText(mine.privateKey) == before && FileManager.default.fileExists(atPath: mine.publicKey.path))
        }
    }

    @Test("logout with the key file missing deletes nothing it did not write: another key's .pub, a directory, a link to a login file elsewhere")
    func logoutLeavesForeignFiles() async throws {
        try await withTemporaryDirectory { dir in
            let base = dir.child("sshca_ed25519")
            // Someone's own public key at KEY.pub, and a directory with a file in it at KEY-cert.pub.
            let other = try await SSHKeygen.generate(.ed25519, at: dir.child("other"), comment: "someone@else")
            try FileManager.default.copyItem(at: other.publicKey, to: URL(fileURLWithPath: base.path + ".pub"))
            let directory = URL(fileURLWithPath: base.path + "-cert.pub")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try writeText("keep me\n", to: directory.child("inside"))
            let logout = try await SSHCA.run(["logout", "--key-file", base.path])
            #expect(logout.succeeded && logout.stdoutText.contains("not a file sshca login wrote"), "\(logout)")
            #expect(fileExists(URL(fileURLWithPath: base.path + ".pub")) && fileExists(directory.child("inside")), "logout deleted what it did not write")

            // A link at KEY.pub to a file that does carry login's mark is not followed.
            let elsewhere = dir.child("elsewhere.pub")
            try writeText("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl sshca login alice:key:1 serial 1\n", to: elsewhere)
            try FileManager.default.removeItem(at: URL(fileURLWithPath: base.path + ".pub"))
            try FileManager.default.createSymbolicLink(atPath: base.path + ".pub", withDestinationPath: elsewhere.path)
            let again = try await SSHCA.run(["logout", "--key-file", base.path])
            #expect(again.succeeded && fileExists(elsewhere), "\(again)")
            var info = stat()
            #expect(lstat(base.path + ".pub", &info) == 0, "the link itself was removed")
        }
    }
}
