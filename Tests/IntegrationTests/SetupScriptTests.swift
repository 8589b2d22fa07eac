import Common
import Foundation
import Testing
import TestSupport

/// `sshca host setup --print-script`: the generated POSIX sh script, run with /bin/sh against a
/// temp tree, must leave sshd (`sshd -T`) with the same settings `host setup` makes, be idempotent,
/// agree with `host setup` byte for byte, and put everything back when sshd rejects the result.
@Suite("host setup --print-script")
struct SetupScriptTests {
    struct Tree {
        let dir: URL
        var etc: URL { dir.child("etc") }
        var config: URL { etc.child("sshd_config") }
        var options: [String] {
            ["--sshd-config", config.path, "--krl", etc.child("sshca_revoked.krl").path,
             "--ca-key-path", etc.child("sshca_user_ca.pub").path, "--principals-dir", etc.child("principals").path]
        }
    }

    /// A Debian-style tree: sshd_config including sshd_config.d/*.conf, with a cloud-init drop-in
    /// that turns passwords on (the override trap); or, without `include`, one flat file.
    static func makeTree(_ dir: URL, include: Bool) async throws -> Tree {
        let tree = Tree(dir: dir)
        try FileManager.default.createDirectory(at: tree.etc.child("sshd_config.d"), withIntermediateDirectories: true)
        try await SSHKeygen.generate(.ed25519, at: tree.etc.child("hostkey"))
        var text = "# test sshd_config\n"
        if include { text += "Include \(tree.etc.child("sshd_config.d").path)/*.conf\n" }
        text += "HostKey \(tree.etc.child("hostkey").path)\nUsePAM no\nPidFile \(dir.child("sshd.pid").path)\nPasswordAuthentication yes\n"
        try writeText(text, to: tree.config)
        try writeText("PasswordAuthentication yes\n", to: tree.etc.child("sshd_config.d").child("50-cloud-init.conf"))
        return tree
    }

    static func effective(_ tree: Tree) async throws -> String {
        try await runChecked("/usr/sbin/sshd", ["-T", "-f", tree.config.path]).stdoutText
    }

    static func script(_ tree: Tree, ca: URL, extra: [String] = []) async throws -> URL {
        let result = try await SSHCA.run(["host", "setup", "--ca-key", ca.path, "--print-script"] + tree.options + extra)
        try #require(result.succeeded, "\(result)")
        let url = tree.dir.child("setup.sh")
        try result.stdout.write(to: url)
        return url
    }

    static func makeCA(_ dir: URL) async throws -> URL {
        let home = dir.child("ca")
        let result = try await SSHCA.run(["init", "--home", home.path, "--no-passphrase"])
        try #require(result.succeeded, "\(result)")
        return home.child("user_ca.pub")
    }

    @Test("the script sets sshd up like host setup does, and a second run changes nothing", arguments: [true, false])
    func scriptSetsUp(include: Bool) async throws {
        try await withTemporaryDirectory { dir in
            let ca = try await Self.makeCA(dir)
            let tree = try await Self.makeTree(dir.child("tree"), include: include)
            let script = try await Self.script(tree, ca: ca, extra: ["--principal", "deploy=alice,bob", "--disable-passwords"])
            let first = try await runProcess("/bin/sh", [script.path], environment: ["SSHCA_NO_RELOAD": "1"])
            #expect(first.succeeded, "\(first)")
            let values = try await Self.effective(tree)
            #expect(values.contains("trustedusercakeys \(tree.etc.child("sshca_user_ca.pub").path)\n"))
            #expect(values.contains("revokedkeys \(tree.etc.child("sshca_revoked.krl").path)\n"))
            #expect(values.contains("passwordauthentication no\n"), "the cloud-init drop-in still wins:\n\(values)")
            #expect(try readText(tree.etc.child("principals").child("deploy")) == "alice\nbob\n")
            // The KRL it wrote is one OpenSSH loads.
            let probe = try await runProcess("ssh-keygen", ["-Q", "-f", tree.etc.child("sshca_revoked.krl").path, ca.path])
            #expect(probe.exitCode == 0, "\(probe)")
            let snapshot = try DirectorySnapshot(tree.etc)
            let second = try await runProcess("/bin/sh", [script.path], environment: ["SSHCA_NO_RELOAD": "1"])
            #expect(second.succeeded && second.stdoutText.contains("already set up"), "\(second)")
            #expect(try DirectorySnapshot(tree.etc) == snapshot)
            // host setup finds the same state: the two paths write the same bytes.
            let setup = try await SSHCA.run(["host", "setup", "--ca-key", ca.path, "--principal", "deploy=alice,bob",
                                             "--disable-passwords", "--no-reload"] + tree.options)
            #expect(setup.succeeded && setup.stdoutText.contains("already set up"), "\(setup)")
        }
    }

    @Test("when sshd rejects the result, the script puts every file back")
    func scriptRollsBack() async throws {
        try await withTemporaryDirectory { dir in
            let ca = try await Self.makeCA(dir)
            let tree = try await Self.makeTree(dir.child("tree"), include: true)
            // TrustedUserCAKeys before the Include: sshd keeps it, so the script's value cannot win.
            let original = try readText(tree.config)
            try writeText("TrustedUserCAKeys /etc/ssh/someone_else.pub\n" + original, to: tree.config)
            let before = try DirectorySnapshot(tree.etc)
            let script = try await Self.script(tree, ca: ca)
            let run = try await runProcess("/bin/sh", [script.path], environment: ["SSHCA_NO_RELOAD": "1"])
            #expect(!run.succeeded, "\(run)")
            #expect(run.stderrText.contains("trustedusercakeys"), "\(run)")
            let after = try DirectorySnapshot(tree.etc)
            #expect(after == before, "files changed: \(after.differences(from: before))")
        }
    }
}
