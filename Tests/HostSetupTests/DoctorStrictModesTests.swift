import Common
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `host doctor` checks owner and modes as sshd's StrictModes does: a real sshd (StrictModes
/// yes) refuses a principals file under a group-writable directory, and doctor says so.
@Suite("host doctor and StrictModes")
struct DoctorStrictModesTests {
    @Test("a world-writable principals directory: real sshd refuses the certificate, doctor names the directory (not 'no problems'); a group-writable one sshd takes, doctor does not flag; a writable CA key file is flagged")
    func groupWritablePrincipalsDirectory() async throws {
        try #require(treeBase.strictModes, "this test needs root and a root-owned /run to keep sshd's StrictModes yes")
        try await withTreeDirectory("doctor-strict") { dir in
            let ca = try await CAFixture.create(in: dir)
            let tree = try await DebianTree.create(in: dir.child("tree"))
            try checked(try await tree.setup(caKey: ca.userCAPublicKey, ["--principal", "\(currentUserName)=alice"]))
            let sshd = try await TreeSSHD.start(tree)
            defer { sshd.stop() }
            let key = try await makeClientKey(tree.client, "alice")
            let certificate = try await ca.sign(key, keyID: "alice", principals: ["alice"])
            let doctor = ["host", "doctor", "--sshd-config", tree.sshdConfig.path, "--user", currentUserName, "--cert", certificate.path]

            let working = try await sshd.sshEventually(identity: key.privateKey, certificate: certificate)
            #expect(working.succeeded, "\(working)\n\(sshd.log)")
            let healthy = try await SSHCA.run(doctor)
            #expect(healthy.exitCode == 0, "\(healthy)")

            // Group-writable by root's own group (one member: root): Debian's sshd accepts it, and so does doctor.
            chmod(tree.principalsDirectory.path, 0o775)
            let groupOnly = try await sshd.sshEventually(identity: key.privateKey, certificate: certificate)
            #expect(groupOnly.succeeded, "\(groupOnly)")
            let notFlagged = try await SSHCA.run(doctor)
            #expect(notFlagged.exitCode == 0, "doctor flags what sshd accepts: \(notFlagged)")
            // Writable by others: sshd refuses, doctor names the directory.
            chmod(tree.principalsDirectory.path, 0o757)
            let mark = sshd.logMark()
            let refused = try await sshd.ssh(identity: key.privateKey, certificate: certificate)
            #expect(!refused.succeeded, "sshd took a principals file in a world-writable directory")
            try await Task.sleep(for: .milliseconds(200))
            #expect(sshd.log(since: mark).contains("bad ownership or modes"), "sshd's own reason: \(sshd.log(since: mark))")
            let diagnosed = try await SSHCA.run(doctor)
            #expect(diagnosed.exitCode == 1 && diagnosed.stdoutText.contains("principals-path-unsafe")
                    && diagnosed.stdoutText.contains(tree.principalsDirectory.path), "\(diagnosed)")

            chmod(tree.principalsDirectory.path, 0o755)
            let fixed = try await SSHCA.run(doctor)
            #expect(fixed.exitCode == 0, "\(fixed)")
            // The CA key file: sshd does not check it, but a writable one lets anyone add a CA.
            chmod(tree.caKeyPath.path, 0o666)
            let writable = try await SSHCA.run(doctor)
            #expect(writable.exitCode == 1 && writable.stdoutText.contains("ca-file-writable"), "\(writable)")
            chmod(tree.caKeyPath.path, 0o644)
        }
    }
}
