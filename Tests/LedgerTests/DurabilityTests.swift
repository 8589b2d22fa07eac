import Foundation
import Testing
import TestSupport
import Ledger

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
}
