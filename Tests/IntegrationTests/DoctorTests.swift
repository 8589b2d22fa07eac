import Common
import Foundation
import Testing
import TestSupport

/// `sshca host doctor` against sshd's own view of a configuration (`sshd -T`), one broken set-up
/// at a time: each must be named by its code, with a fix, and exit 1; a working set-up exits 0.
@Suite("host doctor names the cause of a failing certificate login")
struct DoctorTests {
    enum Breakage: String, CaseIterable, Sendable {
        case configInvalid = "config-invalid"
        case noTrustedCA = "no-trusted-ca"
        case caFileMissing = "ca-file-missing"
        case krlMissing = "krl-missing"
        case krlInvalid = "krl-invalid"
        case caMismatch = "ca-mismatch"
        case expired
        case notYetValid = "not-yet-valid"
        case revoked
        case principalNotAllowed = "principal-not-allowed"
        case principalsFileMissing = "principals-file-missing"
        case hostCertificate = "not-user-certificate"
    }

    /// A CA home, a user key, an sshd configuration that trusts the CA, and a certificate for `me`.
    struct Setup {
        let dir: URL
        let home: URL
        let config: URL
        let caFile: URL
        let krlFile: URL
        let key: KeyPair

        func sign(_ extra: [String], principals: String = "me", output: String = "id-cert.pub") async throws -> URL {
            let out = dir.child(output)
            let result = try await SSHCA.run(["sign", "--home", home.path, "--key-id", "doctor", "--principals", principals, "--output", out.path] + extra + [key.publicKey.path])
            try #require(result.succeeded, "\(result)")
            return out
        }

        func doctor(user: String = "root", cert: URL) async throws -> ProcessResult {
            try await SSHCA.run(["host", "doctor", "--sshd-config", config.path, "--user", user, "--cert", cert.path])
        }
    }

    static func makeSetup(_ dir: URL, extraConfig: String = "") async throws -> Setup {
        let home = dir.child("ca")
        let initialized = try await SSHCA.run(["init", "--home", home.path, "--no-passphrase"])
        try #require(initialized.succeeded, "\(initialized)")
        try await SSHKeygen.generate(.ed25519, at: dir.child("hostkey"))
        let key = try await SSHKeygen.generate(.ed25519, at: dir.child("id"))
        let caFile = dir.child("trusted_ca.pub")
        try FileManager.default.copyItem(at: home.child("user_ca.pub"), to: caFile)
        let krlFile = dir.child("revoked.krl")
        try FileManager.default.copyItem(at: home.child("revoked.krl"), to: krlFile)
        let config = dir.child("sshd_config")
        try writeText("""
            \(extraConfig)HostKey \(dir.child("hostkey").path)
            UsePAM no
            PidFile \(dir.child("sshd.pid").path)
            TrustedUserCAKeys \(caFile.path)
            RevokedKeys \(krlFile.path)

            """, to: config)
        return Setup(dir: dir, home: home, config: config, caFile: caFile, krlFile: krlFile, key: key)
    }

    @Test("a working set-up has no problem (exit 0)")
    func healthy() async throws {
        try await withTemporaryDirectory { dir in
            let setup = try await Self.makeSetup(dir)
            let result = try await setup.doctor(cert: try await setup.sign([], principals: "root"))
            #expect(result.exitCode == 0, "\(result)")
            #expect(result.stdoutText.contains("no problems found"), "\(result)")
        }
    }

    @Test("each broken set-up is named, with a fix", arguments: Breakage.allCases)
    func broken(_ breakage: Breakage) async throws {
        try await withTemporaryDirectory { dir in
            var setup = try await Self.makeSetup(dir)
            var user = "root"
            var certificate = try await setup.sign([], principals: "root")
            switch breakage {
            case .configInvalid:
                try writeText(try readText(setup.config) + "NoSuchDirective yes\n", to: setup.config)
            case .noTrustedCA:
                let text = try readText(setup.config).split(separator: "\n").filter { !$0.hasPrefix("TrustedUserCAKeys") }.joined(separator: "\n")
                try writeText(text + "\n", to: setup.config)
            case .caFileMissing:
                try FileManager.default.removeItem(at: setup.caFile)
            case .krlMissing:
                try FileManager.default.removeItem(at: setup.krlFile)
            case .krlInvalid:
                try writeText("SSHKRL\n garbage", to: setup.krlFile)
            case .caMismatch:
                let other = try await Self.makeSetup(dir.child("other").creatingDirectory())
                certificate = try await other.sign([], principals: "root")
            case .expired:
                certificate = try await setup.sign(["--validity", "20200101:20200102"], principals: "root")
            case .notYetValid:
                certificate = try await setup.sign(["--validity", "20990101:20990102"], principals: "root")
            case .revoked:
                let revoked = try await SSHCA.run(["revoke", "--home", setup.home.path, "--key", setup.key.publicKey.path, "--reason", "doctor test"])
                try #require(revoked.succeeded, "\(revoked)")
                try FileManager.default.removeItem(at: setup.krlFile)
                try FileManager.default.copyItem(at: setup.home.child("revoked.krl"), to: setup.krlFile)
            case .principalNotAllowed:
                certificate = try await setup.sign([], principals: "someone-else")
            case .principalsFileMissing:
                setup = try await Self.makeSetup(dir.child("mapped").creatingDirectory(),
                                                 extraConfig: "AuthorizedPrincipalsFile \(dir.child("principals").path)/%u\n")
                certificate = try await setup.sign([], principals: "root")
                user = "root"
            case .hostCertificate:
                certificate = try await setup.sign(["--host"], principals: "root")
            }
            let result = try await setup.doctor(user: user, cert: certificate)
            #expect(result.exitCode == 1, "\(result)")
            #expect(result.stdoutText.contains("PROBLEM  [\(breakage.rawValue)]"), "doctor did not name \(breakage.rawValue):\n\(result)")
            #expect(result.stdoutText.contains("fix: "), "no fix offered:\n\(result)")
        }
    }

    @Test("a principals file the user links to a secret, or makes a FIFO: doctor neither prints the secret nor hangs, and names the cause")
    func principalsFileUnderUserControl() async throws {
        try await withTemporaryDirectory { dir in
            let principalsDir = dir.child("principals")
            try FileManager.default.createDirectory(at: principalsDir, withIntermediateDirectories: true)
            let setup = try await Self.makeSetup(dir, extraConfig: "AuthorizedPrincipalsFile \(principalsDir.path)/%u\n")
            let certificate = try await setup.sign([], principals: "root")
            // A secret the doctor (root) could read, behind a link the user made.
            let secret = dir.child("secret")
            try writeText("root:$6$secret-hash-line:19000:0:99999:7:::\n", to: secret)
            chmod(secret.path, 0o600)
            try FileManager.default.createSymbolicLink(atPath: principalsDir.child("root").path, withDestinationPath: secret.path)
            let linked = try await setup.doctor(cert: certificate)
            #expect(linked.exitCode == 1 && linked.stdoutText.contains("principals-file-unsafe") && linked.stdoutText.contains("symbolic link"), "\(linked)")
            #expect(!linked.stdoutText.contains("secret-hash-line") && !linked.stderrText.contains("secret-hash-line"), "doctor printed the linked file:\n\(linked)")
            // A FIFO: before, doctor blocked on it for ever.
            try FileManager.default.removeItem(at: principalsDir.child("root"))
            #expect(mkfifo(principalsDir.child("root").path, 0o644) == 0)
            let fifo = try await SSHCA.run(["host", "doctor", "--sshd-config", setup.config.path, "--user", "root", "--cert", certificate.path], timeout: .seconds(20))
            #expect(!fifo.timedOut && fifo.exitCode == 1 && fifo.stdoutText.contains("not a regular file"), "\(fifo)")
        }
    }
}
