import Common
import Foundation
import Testing
import TestSupport
import SSHFormat
@testable import Ledger
@testable import LedgerSQLite

/// Acceptance item 8: the ledger runs in WAL mode with synchronous = FULL.
@Suite("Ledger durability settings")
struct DurabilityTests {
    @Test("a fresh ledger: journal mode wal, synchronous 2 (FULL); also after reopening, and for a ledger made by sshca init")
    func walAndFullSync() async throws {
        try await withTemporaryDirectory(prefix: "ledger-dur") { dir in
            let path = dir.child("fresh.sqlite").path
            do {
                let ledger = try SQLiteLedger(path: path)
                let settings = try ledger.durability()
                #expect(settings.journalMode == "wal")
                #expect(settings.synchronous == 2)
                try ledger.close()
            }
            do {
                let reopened = try SQLiteLedger(path: path)
                let settings = try reopened.durability()
                #expect(settings.journalMode == "wal" && settings.synchronous == 2, "after reopening: \(settings)")
                let pool = try SQLiteLedger(path: path, access: .concurrentReaders)
                let poolSettings = try pool.durability()
                #expect(poolSettings.journalMode == "wal" && poolSettings.synchronous == 2, "pool access: \(poolSettings)")
                try pool.close()
                try reopened.close()
            }
            // WAL mode is stored in the file: another program sees it.
            let mode = try await runChecked("sqlite3", [path, "PRAGMA journal_mode;"])
            #expect(mode.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "wal")

            let ca = try await CAHomeFixture.create(in: dir)
            let fromInit = try SQLiteLedger(path: ca.ledgerFile.path)
            let initSettings = try fromInit.durability()
            #expect(initSettings.journalMode == "wal" && initSettings.synchronous == 2, "sshca init's ledger: \(initSettings)")
            #expect(try fromInit.integrityCheck() == "ok")
            #expect(try fromInit.counters().nextSerial == 1)
            try fromInit.close()
        }
    }

    /// Bytes of a file, or nil when it does not exist.
    func contents(_ url: URL) -> Data? { try? Data(contentsOf: url) }

    func size(_ url: URL) -> Int { contents(url)?.count ?? 0 }

    @Test("commands keep the WAL between them, under the limit: each certificate is committed, reads change nothing, and the WAL is emptied into the ledger once it passes the limit")
    func walBetweenCommands() async throws {
        try await withTemporaryDirectory(prefix: "ledger-wal") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            let wal = URL(fileURLWithPath: ca.ledgerFile.path + "-wal")
            var sizes: [Int] = []
            var emptied = 0
            for i in 1...40 {
                let (_, certificate) = try await ca.sign(key, keyID: "wal-\(i)", principals: ["alice"])
                #expect(certificate.body.serial == UInt64(i))
                // Kept: the commit was appended to the WAL and the file stays for the next command.
                #expect(fileExists(wal), "the WAL was deleted after command \(i)")
                let walSize = size(wal)
                // One certificate adds a few pages; the command that passes the limit empties it.
                #expect(walSize <= SQLiteLedger.walLimit + 64 * 1024, "WAL of \(walSize) bytes after command \(i)")
                if let last = sizes.last, walSize < last { emptied += 1 }
                sizes.append(walSize)
            }
            #expect(emptied >= 1, "the WAL never went back under the limit: \(sizes)")
            // A command that only reads leaves the ledger and its WAL as they were.
            let before = (contents(ca.ledgerFile), contents(wal))
            #expect(try await ca.list().count == 40)
            #expect(contents(ca.ledgerFile) == before.0 && contents(wal) == before.1, "sshca list changed the ledger files")
            // Another program reads every commit (through the WAL), and the chain checks out.
            let count = try await runChecked("sqlite3", [ca.ledgerFile.path, "SELECT COUNT(*), MAX(serial) FROM certificates;"])
            #expect(count.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "40|40")
            #expect(try await ca.auditVerify().succeeded)
            // A backup taken now holds the newest certificate.
            let backup = dir.child("backup.sqlite")
            try await ca.runChecked(["backup"], ["--output", backup.path, "--passphrase-file", try passphraseFile(in: dir).path])
            let inBackup = try await runChecked("sqlite3", [backup.path, "SELECT MAX(serial) FROM certificates;"])
            #expect(inBackup.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "40")
        }
    }

    @Test("while another connection has the ledger open (a running service), commands past the limit leave the WAL to it; once it is closed, the next command empties it")
    func walLeftToOtherConnections() async throws {
        try await withTemporaryDirectory(prefix: "ledger-wal-shared") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            let wal = URL(fileURLWithPath: ca.ledgerFile.path + "-wal")
            // The service's kind of connection, open the whole time.
            let service = try SQLiteLedger(path: ca.ledgerFile.path, access: .concurrentReaders)
            _ = try service.counters()
            var serial: UInt64 = 0
            while size(wal) <= SQLiteLedger.walLimit + 64 * 1024 {
                serial += 1
                try await ca.sign(key, keyID: "shared-\(serial)", principals: ["alice"])
                try #require(serial < 200, "the WAL did not grow: \(size(wal)) bytes")
            }
            // Commands passed the limit and left the WAL alone: the service's connection reads it.
            #expect(try service.counters().nextSerial == serial + 1)
            try service.close()
            // Alone now: the next command that writes empties the WAL into the ledger.
            let ledgerBefore = size(ca.ledgerFile)
            try await ca.sign(key, keyID: "alone", principals: ["alice"])
            #expect(size(wal) == 0, "WAL of \(size(wal)) bytes after the command that was alone")
            #expect(size(ca.ledgerFile) > ledgerBefore)
            let count = try await runChecked("sqlite3", [ca.ledgerFile.path, "SELECT COUNT(*) FROM certificates;"])
            #expect(count.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "\(serial + 1)")
            #expect(try await ca.auditVerify().succeeded)
        }
    }

    @Test("a ledger closed by hand with a large WAL while another connection is open is released without touching the closed connection")
    func closedByHandWithLargeWAL() async throws {
        try await withTemporaryDirectory(prefix: "ledger-wal-close") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let caKey = try PublicKeyText(parsing: readText(ca.userCAPublicKey)).key
            let wal = URL(fileURLWithPath: ca.ledgerFile.path + "-wal")
            let other = try SQLiteLedger(path: ca.ledgerFile.path, access: .concurrentReaders)
            _ = try other.counters()
            do {
                let ledger = try SQLiteLedger(path: ca.ledgerFile.path)
                // Every other serial: one row each, enough rows to pass the WAL limit.
                try ledger.revokeSerialsBulk((1...40_000).map { UInt64($0) * 2 }, caKey: caKey, reason: "bulk", by: "test", now: 1)
                #expect(size(wal) > SQLiteLedger.walLimit)
                try ledger.close()
            }
            // Released after its close: the WAL is left to the other connection, which reads it.
            #expect(size(wal) > SQLiteLedger.walLimit)
            #expect(try other.revocationState(omitExpiredBefore: 0).certificates.first?.serials.count == 40_000)
            try other.close()
        }
    }

    @Test("the applied migrations are counted in the file's header; a ledger without the count (an older sshca's) is checked by the migrator and gets it")
    func schemaVersionInHeader() async throws {
        try await withTemporaryDirectory(prefix: "ledger-schema") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            try await ca.sign(key, keyID: "before", principals: ["alice"])
            func userVersion() async throws -> String {
                try await runChecked("sqlite3", [ca.ledgerFile.path, "PRAGMA user_version;"]).stdoutText
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let migrations = SQLiteLedger.migrator.migrations
            #expect(migrations.count >= 2)
            #expect(try await userVersion() == "\(migrations.count)")
            // As an older sshca left it: every migration applied, no count in the header.
            try await runChecked("sqlite3", [ca.ledgerFile.path, "PRAGMA user_version = 0;"])
            try await ca.sign(key, keyID: "after", principals: ["alice"])
            #expect(try await userVersion() == "\(migrations.count)")
            let applied = try await runChecked("sqlite3", [ca.ledgerFile.path, "SELECT identifier FROM grdb_migrations ORDER BY rowid;"])
            #expect(applied.stdoutText.split(separator: "\n").map(String.init) == migrations)
            #expect(try await ca.list().map(\.keyId) == ["before", "after"])
            #expect(try await ca.auditVerify().succeeded)
        }
    }
}
