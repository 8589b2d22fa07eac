import Common
import Foundation
import Testing
import TestSupport
import Ledger
import LedgerSQLite
import SSHFormat

/// The ledger keeps exactly what it is given, or refuses it: a NUL byte (which SQLite's text
/// binding would cut off) never shortens a stored value behind the audit chain's back.
@Suite("ledger: text it is given")
struct LedgerTextTests {
    @Test("audit text with NUL and other control characters: the chain verifies, and what is stored is what was hashed")
    func auditTextWithControlCharacters() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try SQLiteLedger(path: dir.child("ledger.sqlite").path)
            try ledger.recordEvent(.authenticationFailed(method: "x\u{0}y", address: "\u{1b}[2J", reason: "\nforged"), actor: "mal\u{0}lory", now: 1_000)
            try ledger.recordEvent(.tokenRevoked(id: "plain"), actor: "ok", now: 1_001)
            guard case .intact(let entries, _) = try ledger.verifyAudit() else {
                Issue.record("the chain broke on input: \(try ledger.verifyAudit())"); return
            }
            #expect(entries == 2)
            let stored = try ledger.auditEntries(limit: nil)
            #expect(stored.first?.actor == "mal\\x00lory" && stored.first?.details == "method=x\\x00y address=\\x1b[2J reason=\\x0aforged",
                    "\(stored.first.map { "\($0.actor) \($0.details)" } ?? "none")")
            // sqlite3 reads the same bytes back: nothing was cut at a NUL.
            let viaSQLite = try checked(try await runProcess("sqlite3", [dir.child("ledger.sqlite").path, "SELECT details FROM audit WHERE id = 1"]))
            #expect(viaSQLite.stdoutText.trimmingCharacters(in: .newlines) == "method=x\\x00y address=\\x1b[2J reason=\\x0aforged")
        }
    }

    @Test("a key id, principal, reason or name with a NUL is refused by the ledger itself, never stored shortened")
    func identifyingTextWithNUL() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try SQLiteLedger(path: dir.child("ledger.sqlite").path)
            let cases: [(String, RevocationTarget, String)] = [
                ("key id", .keyID("a\u{0}b"), "left"),
                ("principal", .principal("ro\u{0}ot"), "left"),
                ("reason", .keyID("c"), "le\u{0}ft"),
            ]
            for (name, target, reason) in cases {
                do {
                    _ = try ledger.revoke(target, reason: reason, by: "sec", now: 1_000)
                    Issue.record("\(name) with a NUL was stored")
                } catch let error as LedgerError {
                    #expect(error.code == .badInput && error.reason.contains("NUL"), "\(name): \(error)")
                }
            }
            // "a" was not revoked by the key id "a\0b".
            #expect(try ledger.revoke(.keyID("a"), reason: "check", by: "sec", now: 1_001).isNew, "key id \"a\" was already revoked")
            let key = try PublicKey(blob: Array(Data(base64Encoded: "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")!))
            do {
                try ledger.addIdentity(IdentityRecord(name: "al\u{0}ice", role: "engineer", key: key, disabled: false, createdAt: 1, updatedAt: 1), by: "admin")
                Issue.record("a user name with a NUL was stored")
            } catch let error as LedgerError {
                #expect(error.code == .badInput)
            }
            #expect(try ledger.identities().isEmpty)
            guard case .intact = try ledger.verifyAudit() else { Issue.record("chain broken"); return }
        }
    }
}
