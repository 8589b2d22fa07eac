import Common
import Foundation
import Testing
import TestSupport
import SSHFormat

/// Acceptance item 5: the hash-chained audit log detects an edited and a deleted row, and the
/// KRL's comment carries the chain head.
@Suite("Audit chain")
struct AuditChainTests {
    @discardableResult
    func sqlite(_ database: URL, _ sql: String) async throws -> ProcessResult {
        try await runChecked("sqlite3", [database.path, sql])
    }

    @Test("audit verify detects an edited and a deleted row, and names the entry")
    func detectsTampering() async throws {
        try await withTemporaryDirectory(prefix: "ledger-audit") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            for i in 0..<4 {
                try await ca.sign(key, keyID: "audit-\(i)", principals: ["root"], output: dir.child("c\(i)-cert.pub"))
            }
            try await ca.revokeChecked(["--serial", "2"])
            let entries = try await ca.auditList()
            #expect(entries.count >= 6, "\(entries)")
            #expect(entries.map(\.id) == Array(1...Int64(entries.count)))
            #expect(entries.filter { $0.action == "issue" }.count == 4)
            let ok = try await ca.auditVerify()
            #expect(ok.exitCode == 0 && ok.stdoutText.contains("intact"), "\(ok)")

            // Edit the details of an issuance entry (not the first, not the last).
            let target = try #require(entries.first { $0.action == "issue" && $0.details.contains("serial=3") })
            try await sqlite(ca.ledgerFile, "UPDATE audit SET details = replace(details, 'serial=3', 'serial=33') WHERE id = \(target.id)")
            let edited = try await sqlite(ca.ledgerFile, "SELECT details FROM audit WHERE id = \(target.id)")
            #expect(edited.stdoutText.contains("serial=33"), "the edit did not take: \(edited)")
            let broken = try await ca.auditVerify()
            #expect(broken.exitCode == 1, "audit verify after editing entry \(target.id):\n\(broken)")
            #expect(broken.stderrText.contains("entry \(target.id):") || broken.stderrText.contains("entry \(target.id) "),
                    "audit verify does not name entry \(target.id):\n\(broken)")

            // Undo the edit: intact again (the check is about content, not about the file).
            try await sqlite(ca.ledgerFile, "UPDATE audit SET details = replace(details, 'serial=33', 'serial=3') WHERE id = \(target.id)")
            let repaired = try await ca.auditVerify()
            #expect(repaired.exitCode == 0, "\(repaired)")

            // Edit another field (the actor) of a later row.
            let revokeEntry = try #require(entries.first { $0.action == "revoke" })
            try await sqlite(ca.ledgerFile, "UPDATE audit SET actor = 'someone-else' WHERE id = \(revokeEntry.id)")
            let actorEdited = try await ca.auditVerify()
            #expect(actorEdited.exitCode == 1 && actorEdited.stderrText.contains("entry \(revokeEntry.id)"), "\(actorEdited)")
            try await sqlite(ca.ledgerFile, "UPDATE audit SET actor = '\(revokeEntry.actor)' WHERE id = \(revokeEntry.id)")
            #expect(try await ca.auditVerify().exitCode == 0)

            // Delete a row in the middle.
            let deletedID = target.id
            try await sqlite(ca.ledgerFile, "DELETE FROM audit WHERE id = \(deletedID)")
            let deleted = try await ca.auditVerify()
            #expect(deleted.exitCode == 1, "audit verify after deleting entry \(deletedID):\n\(deleted)")
            #expect(deleted.stderrText.contains("entry \(deletedID)"), "audit verify does not name the deleted entry \(deletedID):\n\(deleted)")
        }
    }

    @Test("a deleted first row is detected")
    func detectsDeletedFirstRow() async throws {
        try await withTemporaryDirectory(prefix: "ledger-audit2") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            try await ca.sign(key, keyID: "one", principals: ["root"])
            #expect(try await ca.auditVerify().exitCode == 0)
            try await sqlite(ca.ledgerFile, "DELETE FROM audit WHERE id = 1")
            let result = try await ca.auditVerify()
            #expect(result.exitCode == 1 && result.stderrText.contains("entry 1"), "\(result)")
        }
    }

    /// "Deleting a row is detected" also for the newest rows. A hash chain alone cannot see its
    /// tail cut off; the witness is the head in the home's revoked.krl, which then names an entry
    /// that is no longer in the chain.
    @Test("deleting the newest audit rows is detected (the published KRL's head is gone from the chain)")
    func detectsDeletedTail() async throws {
        try await withTemporaryDirectory(prefix: "ledger-audit3") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            try await ca.sign(key, keyID: "one", principals: ["root"], output: dir.child("one-cert.pub"))
            try await ca.sign(key, keyID: "two", principals: ["root"], output: dir.child("two-cert.pub"))
            try await ca.revokeChecked(["--serial", "1"])
            let entries = try await ca.auditList()
            let last = try #require(entries.last)
            #expect(last.action == "krl")
            #expect(try ca.publishedKRL().comment.hasSuffix(last.hash))
            #expect(try await ca.auditVerify().exitCode == 0)
            // Cut off the revocation and the KRL entries.
            try await sqlite(ca.ledgerFile, "DELETE FROM audit WHERE id >= \(last.id - 1)")
            let result = try await ca.auditVerify()
            #expect(result.exitCode == 1, "audit verify after deleting entries \(last.id - 1) and \(last.id):\n\(result)")
        }
    }

    @Test("the KRL comment carries the audit chain head")
    func krlCarriesChainHead() async throws {
        try await withTemporaryDirectory(prefix: "ledger-audit-krl") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            try await ca.sign(key, keyID: "a", principals: ["root"], output: dir.child("a-cert.pub"))
            try await ca.sign(key, keyID: "b", principals: ["root"], output: dir.child("b-cert.pub"))

            func headInKRL(_ file: URL) async throws -> String? {
                let show = try await SSHCA.run(["krl", "show", "--krl", file.path])
                guard show.succeeded else { throw SubprocessError.failed(show) }
                return CAHomeFixture.word(after: "audit-head ", in: show.stdoutText)
            }

            // After `krl write`.
            let written = dir.child("out.krl")
            try await ca.runChecked(["krl", "write"], ["--output", written.path])
            let head1 = try await ca.auditHead()
            #expect(head1.count == 64)
            #expect(try await headInKRL(written) == head1)
            #expect(try await headInKRL(ca.krlFile) == head1)
            #expect(try ca.publishedKRL().comment == "sshca audit-head \(head1)")

            // After a revoke (which publishes).
            try await ca.revokeChecked(["--serial", "1"])
            let head2 = try await ca.auditHead()
            #expect(head2 != head1)
            #expect(try await headInKRL(ca.krlFile) == head2)

            // Issuing moves the chain on; the KRL keeps the head of its own publication.
            try await ca.sign(key, keyID: "c", principals: ["root"], output: dir.child("c-cert.pub"))
            let head3 = try await ca.auditHead()
            #expect(head3 != head2)
            #expect(try await headInKRL(ca.krlFile) == head2)
            // The head in the KRL is the hash of the audit entry that recorded the KRL.
            let entries = try await ca.auditList()
            let krlEntry = try #require(entries.last { $0.action == "krl" })
            #expect(krlEntry.hash == head2)
        }
    }
}
