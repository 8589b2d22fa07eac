import Common
import Foundation
import Testing
import TestSupport

/// `sshca backup` is the whole CA in one 0600 file, keys only ever encrypted, and `sshca
/// restore` puts back what it holds (issue 12 item 12).
@Suite("Backups hold the whole CA")
struct BackupTests {
    static func mode(_ url: URL) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    static func fingerprint(_ home: URL, host: Bool = false) async throws -> String {
        let key = try checked(try await SSHCA.run(["ca-key", "--home", home.path] + (host ? ["--host"] : [])))
        let line = try checked(try await runProcess("ssh-keygen", ["-l", "-f", "-"], stdin: key.stdout))
        return String(line.stdoutText.split(separator: " ")[1])
    }

    @Test("unencrypted CA keys: refused without a passphrase (nothing written); with one, a 0600 file whose keys are encrypted, restored into a new home that then signs with the same CA")
    func unencryptedKeys() async throws {
        try await withTemporaryDirectory { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "user")
            _ = try await ca.sign(key, keyID: "before-backup", principals: ["root"], output: dir.child("before-cert.pub"))
            let backup = dir.child("ca.backup")
            let refused = try await ca.run(["backup"], ["--output", backup.path])
            #expect(!refused.succeeded && refused.stderrText.contains("--passphrase-file") && refused.stderrText.contains("unencrypted"), "\(refused)")
            #expect(!fileExists(backup) && !fileExists(URL(fileURLWithPath: backup.path + ".partial")))

            let pass = try passphraseFile(in: dir, "restore me, please")
            try await ca.runChecked(["backup"], ["--output", backup.path, "--passphrase-file", pass.path])
            let backupMode = try Self.mode(backup)
            #expect(backupMode == 0o600, "backup mode \(String(backupMode, radix: 8))")
            let held = try checked(try await runProcess("sqlite3", [backup.path, "SELECT name, mode, substr(content, 1, 37) FROM sshca_backup_files ORDER BY name"]))
            let rows = held.stdoutText.split(separator: "\n")
            #expect(rows.map { $0.split(separator: "|")[0] } == ["host_ca.key", "host_ca.pub", "sshca.toml", "user_ca.key", "user_ca.pub"], "\(held.stdoutText)")
            for row in rows where row.hasPrefix("user_ca.key") || row.hasPrefix("host_ca.key") {
                #expect(row.hasSuffix("|384|-----BEGIN ENCRYPTED PRIVATE KEY-----"), "a key went into the backup unencrypted or not 0600: \(row)")
            }

            // A new machine: nothing but the backup.
            let fresh = dir.child("fresh")
            let restore = try await SSHCA.run(["restore", backup.path, "--home", fresh.path, "--passphrase-file", pass.path])
            #expect(restore.succeeded && restore.stdoutText.contains("Put back into"), "\(restore)")
            #expect(try await Self.fingerprint(fresh) == (try await Self.fingerprint(ca.home)))
            #expect(try await Self.fingerprint(fresh, host: true) == (try await Self.fingerprint(ca.home, host: true)))
            #expect(try Self.mode(fresh.child("user_ca.key")) == 0o600 && (try Self.mode(fresh)) & 0o077 == 0)
            let listed = try checked(try await SSHCA.run(["list", "--home", fresh.path])).stdoutText
            #expect(listed.contains("before-backup"), "\(listed)")
            let out = dir.child("after-cert.pub")
            let withoutPassphrase = try await SSHCA.run(["sign", "--home", fresh.path, "--key-id", "after", "--principals", "root", "--output", out.path, key.publicKey.path])
            #expect(!withoutPassphrase.succeeded, "the restored key is not encrypted: \(withoutPassphrase)")
            let signed = try await SSHCA.run(["sign", "--home", fresh.path, "--key-id", "after", "--principals", "root", "--output", out.path, key.publicKey.path],
                                             environment: ["SSHCA_PASSPHRASE_FILE": pass.path])
            #expect(signed.succeeded, "\(signed)")
            let listing = try await SSHKeygen.listCertificate(out)
            #expect(listing.signingCAFingerprint == (try await Self.fingerprint(ca.home)), "\(listing.raw)")
        }
    }

    @Test("encrypted CA keys go in as they are; a backup is refused by a home holding another CA")
    func encryptedKeysAndAnotherCA() async throws {
        try await withTemporaryDirectory { dir in
            let pass = try passphraseFile(in: dir, "the CA's own passphrase")
            let home = dir.child("enc")
            _ = try checked(try await SSHCA.run(["init", "--home", home.path, "--passphrase-file", pass.path]))
            let backup = dir.child("enc.backup")
            _ = try checked(try await SSHCA.run(["backup", "--home", home.path, "--output", backup.path], environment: ["SSHCA_PASSPHRASE_FILE": nil]))
            let stored = try checked(try await runProcess("sqlite3", [backup.path, "SELECT hex(content) FROM sshca_backup_files WHERE name = 'user_ca.key'"]))
            let original = try Data(contentsOf: home.child("user_ca.key")).map { String(format: "%02X", $0) }.joined()
            #expect(stored.stdoutText.trimmingCharacters(in: .newlines) == original, "the encrypted key was changed on its way into the backup")

            let other = try await CAHomeFixture.create(in: dir, name: "other")
            let ledgerBefore = try Data(contentsOf: other.ledgerFile)
            let refused = try await other.run(["restore"], [backup.path])
            #expect(!refused.succeeded && refused.stderrText.contains("backup of another CA") && refused.stderrText.contains("--home NEW-DIRECTORY"), "\(refused)")
            #expect(try Data(contentsOf: other.ledgerFile) == ledgerBefore)
        }
    }
}
