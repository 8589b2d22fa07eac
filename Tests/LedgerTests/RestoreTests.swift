import Common
import Foundation
import Testing
import TestSupport
import SSHFormat

/// Acceptance item 6: restoring an old backup never re-issues a serial and never publishes a KRL
/// version servers would refuse.
@Suite("Backup and restore")
struct RestoreTests {
    @Test("after restoring an old backup, serials and KRL versions move past everything published before")
    func restoreJumpsPastEverything() async throws {
        try await withTemporaryDirectory(prefix: "ledger-restore") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            var issued: [UInt64] = []
            var versions: [UInt64] = [try ca.publishedKRL().version]
            func sign(_ id: String) async throws {
                issued.append(try await ca.sign(key, keyID: id, principals: ["root"], output: dir.child("\(id)-cert.pub")).certificate.body.serial)
            }
            for i in 0..<3 { try await sign("before-\(i)") }
            try await ca.revokeChecked(["--serial", "\(issued[0])"])
            versions.append(try ca.publishedKRL().version)

            let backup = dir.child("ledger.backup")
            try await ca.runChecked(["backup"], ["--output", backup.path, "--passphrase-file", try passphraseFile(in: dir).path])
            #expect(fileExists(backup))
            let backupBytes = try Data(contentsOf: backup)

            // More work after the backup: issue, revoke (the KRL version rises), write a KRL.
            for i in 0..<3 { try await sign("after-\(i)") }
            try await ca.revokeChecked(["--serial", "\(issued[4])"])
            versions.append(try ca.publishedKRL().version)
            let extra = dir.child("extra.krl")
            try await ca.runChecked(["krl", "write"], ["--output", extra.path])
            versions.append(try KRL.parse(Array(try Data(contentsOf: extra))).krl.version)
            #expect(versions == versions.sorted() && Set(versions).count == versions.count, "KRL versions did not rise: \(versions)")
            #expect(issued == Array(1...6))

            let restore = try await ca.run(["restore"], [backup.path])
            #expect(restore.succeeded, "\(restore)")
            try await expectKRLLoadable(ca.krlFile, after: restore)
            #expect(try Data(contentsOf: backup) == backupBytes, "restore changed the backup file")

            // The KRL published by the restore has a version above every earlier one.
            let restoredKRL = try ca.publishedKRL()
            #expect(restoredKRL.version > versions.max()!, "KRL version after restore \(restoredKRL.version), before: \(versions)")

            // The next serial is above every serial issued before, including after the backup.
            let next = try await ca.sign(key, keyID: "after-restore", principals: ["root"], output: dir.child("restored-cert.pub"))
            #expect(next.certificate.body.serial > issued.max()!, "serial after restore \(next.certificate.body.serial), issued before: \(issued)")
            let listed = try await ca.list()
            #expect(Set(listed.map(\.serial)).contains(next.certificate.body.serial))

            // The next published KRL keeps rising.
            try await ca.revokeChecked(["--serial", "\(next.certificate.body.serial)"])
            #expect(try ca.publishedKRL().version > restoredKRL.version)

            let verify = try await ca.auditVerify()
            #expect(verify.exitCode == 0 && verify.stdoutText.contains("intact"), "\(verify)")
            let audit = try await ca.auditList()
            let restoreEntries = audit.filter { $0.action == "restore" }
            #expect(restoreEntries.count == 1, "restore audit entries: \(restoreEntries)")
            #expect(restoreEntries.first?.details.contains(backup.path) == true, "\(restoreEntries)")
            // The restored ledger is the backup's: certificates issued after the backup are gone
            // from it, the ones before are there.
            let serials = Set(listed.map(\.serial))
            #expect(serials.isSuperset(of: issued.prefix(3)))
            #expect(serials.isDisjoint(with: issued.suffix(3)))
        }
    }

    /// Beyond the acceptance list: a certificate revoked after the backup was taken (and whose
    /// revocation servers already hold) must not become valid again because the restore publishes
    /// a KRL with a higher version built from the older ledger. The revocations are still in the
    /// home's revoked.krl at restore time.
    @Test("a revocation published after the backup is still in the KRL after the restore")
    func restoreKeepsLaterRevocations() async throws {
        try await withTemporaryDirectory(prefix: "ledger-restore2") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            let stolen = try await makeUserKey(dir, "stolen")
            let early = try await ca.sign(key, keyID: "early", principals: ["root"], output: dir.child("early-cert.pub"))
            let backup = dir.child("ledger.backup")
            try await ca.runChecked(["backup"], ["--output", backup.path, "--passphrase-file", try passphraseFile(in: dir).path])
            let late = try await ca.sign(key, keyID: "late", principals: ["root"], output: dir.child("late-cert.pub"))
            try await ca.revokeChecked(["--serial", "\(early.certificate.body.serial)"])
            try await ca.revokeChecked(["--serial", "\(late.certificate.body.serial)"])
            try await ca.revokeChecked(["--key", stolen.publicKey.path])
            for file in [early.file, late.file, stolen.publicKey] {
                #expect(try await sshKeygenRevoked(krl: ca.krlFile, file: file))
            }

            try await ca.runChecked(["restore"], [backup.path])
            for file in [early.file, late.file, stolen.publicKey] {
                #expect(try await sshKeygenRevoked(krl: ca.krlFile, file: file),
                        "\(file.lastPathComponent) was revoked before the restore and is valid again in the KRL published by the restore")
            }
        }
    }
}
