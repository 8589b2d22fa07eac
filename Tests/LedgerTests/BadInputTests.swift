import Common
import Foundation
import Testing
import TestSupport
import SSHFormat
#if canImport(Glibc)
import Glibc
#endif

/// Acceptance item 7: bad input and broken state give clear messages, the documented exit codes,
/// and change nothing.
@Suite("Ledger bad inputs")
struct LedgerBadInputTests {
    /// The ledger files' bytes (the database and its WAL), to prove that nothing changed.
    func ledgerBytes(_ ca: CAHomeFixture) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for suffix in ["", "-wal"] {
            let url = URL(fileURLWithPath: ca.ledgerFile.path + suffix)
            if fileExists(url) { out[suffix] = try Data(contentsOf: url) }
        }
        return out
    }

    @Test("revoking an unknown serial: exit 65, clear message, nothing recorded")
    func unknownSerial() async throws {
        try await withTemporaryDirectory(prefix: "ledger-bad") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            try await ca.sign(key, keyID: "one", principals: ["root"])
            let versionBefore = try ca.publishedKRL().version
            let auditBefore = try await ca.auditList()

            let result = try await ca.revoke(["--serial", "999"])
            #expect(result.exitCode == 65, "\(result)")
            #expect(result.stderrText.contains("999") && result.stderrText.contains("no certificate"), "\(result)")
            let range = try await ca.revoke(["--serial", "500-600"])
            #expect(range.exitCode == 65 && range.stderrText.contains("500-600"), "\(range)")
            let zero = try await ca.revoke(["--serial", "0"])
            #expect(zero.exitCode == 65 && zero.stderrText.contains("serial"), "\(zero)")
            let reversed = try await ca.revoke(["--serial", "5-2"])
            #expect(reversed.exitCode == 65, "\(reversed)")
            let words = try await ca.revoke(["--serial", "abc"])
            #expect(words.exitCode == 65 && words.stderrText.contains("abc"), "\(words)")

            let show = try await ca.run(["show"], ["999"])
            #expect(show.exitCode == 65 && show.stderrText.contains("999"), "\(show)")

            #expect(try ca.publishedKRL().version == versionBefore, "a failed revoke published a new KRL")
            #expect(try await ca.auditList() == auditBefore, "a failed revoke wrote to the audit log")
            #expect(try await ca.list(["--revoked"]).isEmpty)
        }
    }

    @Test("revoking without a reason, or with an empty one, is refused")
    func missingReason() async throws {
        try await withTemporaryDirectory(prefix: "ledger-bad") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            try await ca.sign(key, keyID: "one", principals: ["root"])
            let auditBefore = try await ca.auditList()

            let none = try await ca.revoke(["--serial", "1"], reason: nil)
            #expect(none.exitCode == 64, "\(none)")
            #expect(none.stderrText.contains("--reason"), "\(none)")
            for reason in ["", "   ", "\t\n"] {
                let empty = try await ca.revoke(["--serial", "1"], reason: reason)
                #expect(empty.exitCode == 64 || empty.exitCode == 65, "reason \(reason.debugDescription):\n\(empty)")
                #expect(empty.stderrText.contains("reason"), "reason \(reason.debugDescription):\n\(empty)")
            }
            #expect(try await ca.list(["--revoked"]).isEmpty, "a revocation without a reason was recorded")
            #expect(try await ca.auditList() == auditBefore)
        }
    }

    @Test("a corrupt ledger file: clear message, exit 1, file unchanged")
    func corruptLedger() async throws {
        try await withTemporaryDirectory(prefix: "ledger-bad") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            try await ca.sign(key, keyID: "one", principals: ["root"], output: dir.child("first-cert.pub"))
            var rng = SplitMix(seed: 42)
            let garbage = Data((0..<8192).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            // Remove the WAL too, so only the garbage file is there to read.
            for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: ca.ledgerFile.path + suffix) }
            try garbage.write(to: ca.ledgerFile)
            let krlBefore = try Data(contentsOf: ca.krlFile)

            let list = try await ca.run(["list"])
            #expect(list.exitCode == 1, "\(list)")
            #expect(list.stderrText.contains("not a valid SQLite database") || list.stderrText.contains("damaged") || list.stderrText.contains("corrupt"),
                    "unclear message for a corrupt ledger:\n\(list)")
            #expect(list.stderrText.contains("ledger.sqlite"), "the message does not name the file:\n\(list)")
            #expect(try Data(contentsOf: ca.ledgerFile) == garbage, "sshca list changed the corrupt ledger file")

            let sign = try await ca.run(["sign"], ["--key-id", "two", "--principals", "root", "--output", dir.child("second-cert.pub").path, key.publicKey.path])
            #expect(sign.exitCode == 1, "\(sign)")
            #expect(!fileExists(dir.child("second-cert.pub")), "a certificate was written although the ledger is unusable")
            let revoke = try await ca.revoke(["--serial", "1"])
            #expect(revoke.exitCode == 1, "\(revoke)")
            let audit = try await ca.auditVerify()
            #expect(audit.exitCode == 1, "\(audit)")
            #expect(try Data(contentsOf: ca.ledgerFile) == garbage, "a command changed the corrupt ledger file")
            #expect(try Data(contentsOf: ca.krlFile) == krlBefore, "revoked.krl changed although the ledger is unusable")
        }
    }

    @Test("a locked database: list does not wait for it; sign waits for [ledger] lock_timeout, then fails with a 'locked' message and issues nothing")
    func lockedDatabase() async throws {
        try await withTemporaryDirectory(prefix: "ledger-lock") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            try await ca.sign(key, keyID: "one", principals: ["root"], output: dir.child("one-cert.pub"))

            // A sqlite3 shell holding an exclusive transaction, fed through a FIFO we keep open.
            let fifo = dir.child("sql.fifo")
            #expect(mkfifo(fifo.path, 0o600) == 0)
            let marker = dir.child("locked.marker")
            let holder = try BackgroundProcess(
                "sh", ["-c", "exec sqlite3 \(shellQuoted(ca.ledgerFile.path)) < \(shellQuoted(fifo.path))"],
                stdoutFile: dir.child("holder.out"), stderrFile: dir.child("holder.err"))
            defer { holder.stop() }
            let writer = open(fifo.path, O_WRONLY | O_CLOEXEC)
            #expect(writer >= 0)
            var writerOpen = true
            defer { if writerOpen { close(writer) } }
            let script = "BEGIN EXCLUSIVE;\nSELECT count(*) FROM certificates;\n.shell touch \(shellQuoted(marker.path))\n"
            _ = script.withCString { write(writer, $0, strlen($0)) }
            let deadline = ContinuousClock.now + .seconds(20)
            while !fileExists(marker) && ContinuousClock.now < deadline && holder.isRunning {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(fileExists(marker), "the sqlite3 lock holder did not start:\n\(holder.stderrText)")
            #expect(!holder.stderrText.contains("locked"), "the holder could not take the lock: \(holder.stderrText)")

            // Readers are not blocked by the writer (WAL). With [ledger] lock_timeout at 2 minutes,
            // a list that waited for the lock would take those 2 minutes (and then fail): under
            // 1 minute leaves a loaded machine room to start the process, and cannot pass a wait.
            let config = ca.home.child("sshca.toml")
            func setLockTimeout(_ value: String) throws {
                let text = try String(contentsOf: config, encoding: .utf8)
                let changed = text.replacingOccurrences(of: #"lock_timeout = "[^"]*""#, with: "lock_timeout = \"\(value)\"", options: .regularExpression)
                #expect(changed != text || text.contains("lock_timeout = \"\(value)\""), "no lock_timeout line in sshca.toml")
                try changed.write(to: config, atomically: true, encoding: .utf8)
            }
            try setLockTimeout("2m")
            let listDuringLock = try await ca.run(["list"], ["--json"], timeout: .seconds(180))
            #expect(listDuringLock.succeeded && listDuringLock.duration < .seconds(60), "sshca list while a writer holds the lock:\n\(listDuringLock)")
            #expect(listDuringLock.stdoutText.contains("\"one\""), "list did not show the certificate issued before the lock:\n\(listDuringLock)")
            #expect(holder.isRunning, "the lock holder went away during list: \(holder.stderrText)")

            // A writer waits for the lock for lock_timeout, then gives up: 15 s here, longer than
            // the 10 s default, so a setting that was not read fails the lower bound.
            try setLockTimeout("15s")
            let out = dir.child("two-cert.pub")
            let sign = try await ca.run(["sign"], ["--key-id", "two", "--principals", "root", "--output", out.path, key.publicKey.path],
                                        timeout: .seconds(90))
            #expect(sign.exitCode == 1, "\(sign)")
            #expect(sign.stderrText.contains("locked"), "no 'locked' in the message:\n\(sign)")
            #expect(sign.duration >= .seconds(15) && sign.duration < .seconds(80), "sign gave up after \(sign.duration), expected about 15 s")
            #expect(!fileExists(out), "a certificate was written although the ledger was locked")

            // Release the lock (EOF on the shell's input rolls back and exits).
            close(writer)
            writerOpen = false
            let released = ContinuousClock.now + .seconds(20)
            while holder.isRunning && ContinuousClock.now < released { try await Task.sleep(for: .milliseconds(20)) }
            #expect(!holder.isRunning)

            // Nothing was consumed: the next certificate gets serial 2.
            let next = try await ca.sign(key, keyID: "two", principals: ["root"], output: out)
            #expect(next.certificate.body.serial == 2)
            #expect(try await ca.list().map(\.serial) == [1, 2])
        }
    }

    @Test("sign --serial is refused and issues nothing")
    func signSerialRefused() async throws {
        try await withTemporaryDirectory(prefix: "ledger-bad") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            let out = dir.child("cert.pub")
            // Both the fast path and ArgumentParser's path (--serial=N, and an option after the key).
            for args in [["--serial", "5", "--key-id", "x", "--principals", "root", "--output", out.path, key.publicKey.path],
                         ["--serial=7", "--key-id", "x", "--principals", "root", "--output", out.path, key.publicKey.path],
                         ["--key-id", "x", "--principals", "root", "--output", out.path, key.publicKey.path, "--serial", "9", "--no-default-extensions", "--no-default-extensions"]] {
                let result = try await ca.run(["sign"], args)
                #expect(result.exitCode == 65 || result.exitCode == 64, "\(result)")
                #expect(result.stderrText.contains("--serial") || result.stderrText.contains("serial"), "\(result)")
                #expect(!fileExists(out), "a certificate was written with --serial")
            }
            #expect(try await ca.list().isEmpty)
            // Without it, the ledger starts at 1.
            #expect(try await ca.sign(key, keyID: "x", principals: ["root"], output: out).certificate.body.serial == 1)
        }
    }

    @Test("issuance for a revoked key id or a revoked key is refused with exit 65")
    func revokedIssuanceRefused() async throws {
        try await withTemporaryDirectory(prefix: "ledger-bad") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key1 = try await makeUserKey(dir, "k1")
            let key2 = try await makeUserKey(dir, "k2")
            try await ca.sign(key1, keyID: "laptop", principals: ["root"], output: dir.child("a-cert.pub"))
            try await ca.revokeChecked(["--key-id", "laptop"])
            let out = dir.child("b-cert.pub")
            let byID = try await ca.run(["sign"], ["--key-id", "laptop", "--principals", "root", "--output", out.path, key2.publicKey.path])
            #expect(byID.exitCode == 65, "\(byID)")
            #expect(byID.stderrText.contains("laptop") && byID.stderrText.contains("revoked"), "\(byID)")
            #expect(!fileExists(out))

            try await ca.revokeChecked(["--key", key2.publicKey.path])
            let byKey = try await ca.run(["sign"], ["--key-id", "fresh-id", "--principals", "root", "--output", out.path, key2.publicKey.path])
            #expect(byKey.exitCode == 65, "\(byKey)")
            #expect(byKey.stderrText.contains("revoked"), "\(byKey)")
            #expect(!fileExists(out))
            // Also as a host certificate.
            let asHost = try await ca.run(["sign"], ["--host", "--key-id", "fresh-host", "--principals", "h.example", "--output", out.path, key2.publicKey.path])
            #expect(asHost.exitCode == 65, "\(asHost)")

            #expect(try await ca.list().map(\.serial) == [1], "refused requests reached the ledger")
            // Other keys and ids still work, and the refused attempts consumed no serial.
            #expect(try await ca.sign(key1, keyID: "desktop", principals: ["root"], output: out).certificate.body.serial == 2)
        }
    }

    /// Beyond the acceptance list: the ledger allocates serials, so a range that reaches past the
    /// last issued serial must not revoke certificates issued afterwards (they would be born
    /// revoked, and `sign` says nothing). Either the range is refused or it only covers what exists.
    @Test("a serial range past the last issued serial does not revoke certificates issued later")
    func rangeDoesNotRevokeFutureSerials() async throws {
        try await withTemporaryDirectory(prefix: "ledger-bad") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            var files: [URL] = []
            for i in 1...3 {
                files.append(try await ca.sign(key, keyID: "c\(i)", principals: ["root"], output: dir.child("c\(i)-cert.pub")).file)
            }
            let revoke = try await ca.revoke(["--serial", "2-10"])
            #expect(revoke.exitCode == 0 || revoke.exitCode == 65, "\(revoke)")
            if revoke.exitCode == 0 {
                #expect(try await sshKeygenRevoked(krl: ca.krlFile, file: files[1]))
                #expect(try await sshKeygenRevoked(krl: ca.krlFile, file: files[2]))
            }
            let later = try await ca.sign(key, keyID: "c4", principals: ["root"], output: dir.child("c4-cert.pub"))
            #expect(later.certificate.body.serial == 4)
            try await ca.runChecked(["krl", "write"], ["--output", dir.child("now.krl").path])
            #expect(!(try await sshKeygenRevoked(krl: ca.krlFile, file: later.file)),
                    "certificate 4, issued after `revoke --serial 2-10`, is revoked by the KRL")
            let listed = try await ca.list()
            #expect(listed.first { $0.serial == 4 }?.status == "active", "sshca list: \(listed.map { "\($0.serial) \($0.status)" })")
        }
    }

    @Test("revoking the same thing twice is idempotent")
    func revokeTwice() async throws {
        try await withTemporaryDirectory(prefix: "ledger-bad") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            let other = try await makeUserKey(dir, "other")
            for i in 0..<4 {
                try await ca.sign(key, keyID: "id-\(i)", principals: ["root"], output: dir.child("c\(i)-cert.pub"))
            }
            let targets: [[String]] = [["--serial", "1"], ["--serial", "2-3"], ["--key-id", "id-3"], ["--key", other.publicKey.path]]
            for target in targets {
                let first = try await ca.revokeChecked(target)
                #expect(first.stdoutText.contains("Revoked"), "\(first)")
                let krlAfterFirst = try ca.publishedKRL()
                let revokedAfterFirst = try await ca.list(["--revoked"])
                let second = try await ca.revoke(target, reason: "again")
                #expect(second.exitCode == 0, "\(second)")
                #expect(second.stdoutText.lowercased().contains("already revoked"), "second revoke of \(target):\n\(second)")
                #expect(try await ca.list(["--revoked"]) == revokedAfterFirst)
                let krlAfterSecond = try ca.publishedKRL()
                #expect(krlAfterSecond.certificates == krlAfterFirst.certificates && krlAfterSecond.explicitKeys == krlAfterFirst.explicitKeys)
                // The first reason is the one on record.
                for entry in revokedAfterFirst { #expect(entry.revocation?.reason != "again") }
            }
            #expect(try await ca.auditVerify().exitCode == 0)
        }
    }

    @Test("krl check and krl show refuse corrupt and truncated KRLs with exit 65")
    func corruptKRL() async throws {
        try await withTemporaryDirectory(prefix: "ledger-bad") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            try await ca.sign(key, keyID: "one", principals: ["root"], output: dir.child("one-cert.pub"))
            try await ca.sign(key, keyID: "two", principals: ["root"], output: dir.child("two-cert.pub"))
            try await ca.revokeChecked(["--serial", "1"])
            try await ca.revokeChecked(["--key-id", "gone"])
            try await ca.revokeChecked(["--key", try makeUserKey(dir, "stolen").publicKey.path])
            let good = Array(try Data(contentsOf: ca.krlFile))

            var bad: [(String, [UInt8])] = [
                ("garbage", Array("this is not a KRL at all\n".utf8)),
                ("magic only", Array(good.prefix(8))),
                ("header cut", Array(good.prefix(20))),
                ("last byte cut", Array(good.dropLast())),
                ("half", Array(good.prefix(good.count / 2))),
                ("trailing byte", good + [0]),
            ]
            var unknownSection = good
            unknownSection += [9, 0, 0, 0, 0]
            bad.append(("unknown section", unknownSection))
            for (name, bytes) in bad {
                let file = dir.child("bad-\(name.replacingOccurrences(of: " ", with: "-")).krl")
                try Data(bytes).write(to: file)
                // Premise: OpenSSH rejects it too.
                let theirs = try await runProcess("ssh-keygen", ["-Q", "-f", file.path, key.publicKey.path], environment: SSHKeygen.environment)
                #expect(theirs.exitCode == 255, "premise: ssh-keygen accepts the \(name) KRL:\n\(theirs)")
                let check = try await SSHCA.run(["krl", "check", "--krl", file.path, key.publicKey.path])
                #expect(check.exitCode == 65, "krl check on the \(name) KRL:\n\(check)")
                #expect(!check.stderrText.isEmpty && check.stdoutText.isEmpty, "krl check on the \(name) KRL:\n\(check)")
                let show = try await SSHCA.run(["krl", "show", "--krl", file.path])
                #expect(show.exitCode == 65, "krl show on the \(name) KRL:\n\(show)")
                #expect(show.stderrText.contains(file.lastPathComponent), "krl show does not name the file:\n\(show)")
            }
        }
    }

    /// Beyond the acceptance list: `krl check` documents exit 1 as "at least one revoked", like
    /// ssh-keygen -Q (which exits 255 when it cannot read its input). A missing file must not
    /// produce the same status as a revoked key.
    @Test("krl check on a missing KRL or key file does not exit with the 'revoked' status")
    func krlCheckMissingFiles() async throws {
        try await withTemporaryDirectory(prefix: "ledger-bad") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            let missingKRL = try await SSHCA.run(["krl", "check", "--krl", dir.child("nope.krl").path, key.publicKey.path])
            #expect(missingKRL.exitCode != 0 && missingKRL.exitCode != 1, "krl check on a missing KRL:\n\(missingKRL)")
            let missingKey = try await SSHCA.run(["krl", "check", "--krl", ca.krlFile.path, dir.child("nope.pub").path])
            #expect(missingKey.exitCode != 0 && missingKey.exitCode != 1, "krl check on a missing key file:\n\(missingKey)")
            let premise = try await runProcess("ssh-keygen", ["-Q", "-f", dir.child("nope.krl").path, key.publicKey.path], environment: SSHKeygen.environment)
            #expect(premise.exitCode == 255, "\(premise)")
        }
    }

    enum NotALedger: String, CaseIterable, Sendable, CustomStringConvertible {
        case textFile = "a text file"
        case emptyFile = "an empty file"
        case otherSQLiteDatabase = "an SQLite database that is not an sshca ledger"
        case missingFile = "a file that does not exist"
        var description: String { rawValue }
    }

    @Test("restore of a file that is not a ledger fails and leaves the ledger byte-identical", arguments: NotALedger.allCases)
    func restoreNonDatabase(_ kind: NotALedger) async throws {
        try await withTemporaryDirectory(prefix: "ledger-bad") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            try await ca.sign(key, keyID: "one", principals: ["root"], output: dir.child("one-cert.pub"))
            try await ca.revokeChecked(["--serial", "1"])
            let before = try ledgerBytes(ca)
            let krlBefore = try Data(contentsOf: ca.krlFile)

            let file = dir.child("backup.file")
            switch kind {
            case .textFile:
                try writeText(String(repeating: "not a database\n", count: 500), to: file)
            case .emptyFile:
                try Data().write(to: file)
            case .otherSQLiteDatabase:
                try await runChecked("sqlite3", [file.path, "CREATE TABLE t (x); INSERT INTO t VALUES (1);"])
            case .missingFile:
                break
            }
            let result = try await ca.run(["restore"], [file.path])
            #expect(result.exitCode == 1 || result.exitCode == 65, "restore from \(kind):\n\(result)")
            #expect(!result.stderrText.isEmpty, "restore from \(kind) says nothing on stderr:\n\(result)")
            #expect(try ledgerBytes(ca) == before, "restore from \(kind) changed the ledger")
            #expect(try Data(contentsOf: ca.krlFile) == krlBefore, "restore from \(kind) changed revoked.krl")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: ca.home.path).filter { $0.contains(".restore") || $0.contains(".partial") }
            #expect(leftovers.isEmpty, "restore from \(kind) left \(leftovers)")
            // The CA still has its certificate and revocation.
            #expect(try await ca.list(["--revoked"]).map(\.serial) == [1])
            #expect(try await ca.auditVerify().exitCode == 0)
        }
    }
}
