import Common
import Foundation
import Testing
import TestSupport

/// A restore must never split the CA: it refuses while the service has the home open, and a
/// service whose ledger is replaced under it anyway stops taking writes.
@Suite("service: restore while serving")
struct RestoreWhileServingTests {
    static func issue(_ server: CAServer, token: String, key: KeyPair) async throws -> (status: Int, message: String) {
        let reply = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(token)")
        return (reply.status, errorFields(reply.body).message ?? "")
    }

    @Test("sshca restore refuses while sshca serve runs on the home, says to stop it, and changes nothing")
    func restoreRefusedWhileServing() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            let token = try await server.token(role: "engineer", name: "dave")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            _ = try checked(try await server.sshca(["backup", "--output", dir.child("backup.sqlite").path, "--passphrase-file", try passphraseFile(in: dir).path]))
            #expect(try await Self.issue(server, token: token, key: key).status == 201)
            let krlBefore = try Data(contentsOf: server.home.child("revoked.krl"))
            let restore = try await server.sshca(["restore", dir.child("backup.sqlite").path])
            #expect(!restore.succeeded && restore.stderrText.contains("stop the service first") && restore.stderrText.contains("Nothing was changed"),
                    "\(restore)")
            #expect(try Data(contentsOf: server.home.child("revoked.krl")) == krlBefore, "restore published a KRL")
            // The service goes on with the one ledger: the certificate is there, serials go on.
            let second = try await Self.issue(server, token: token, key: key)
            #expect(second.status == 201, "\(second)")
            let listed = try checked(try await server.sshca(["list", "--json"])).stdoutText
            #expect((try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [Any])?.count == 2, "\(listed)")
            // Stopped, the same restore goes through.
            server.stop()
            let after = try await server.sshca(["restore", dir.child("backup.sqlite").path])
            #expect(after.succeeded, "\(after)")
        }
    }

    @Test("a ledger replaced under a running service (moved over it, or its generation changed in place): writes answer 503 naming it, /healthz fails, nothing lands in either file")
    func replacedUnderTheService() async throws {
        for how in ["moved over", "generation changed"] {
            try await withTemporaryDirectory { dir in
                let server = try await CAServer.start(in: dir)
                defer { server.stop() }
                let token = try await server.token(role: "engineer", name: "dave")
                let security = try await server.token(role: "security", name: "sec")
                let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
                #expect(try await Self.issue(server, token: token, key: key).status == 201)
                let ledger = server.home.child("ledger.sqlite").path
                if how == "moved over" {
                    // What a restore that ignores the lock (an older sshca, or a copy by hand) does.
                    _ = try checked(try await server.sshca(["backup", "--output", dir.child("copy.sqlite").path, "--passphrase-file", try passphraseFile(in: dir).path]))
                    _ = try checked(try await runProcess("mv", [dir.child("copy.sqlite").path, ledger]))
                } else {
                    _ = try checked(try await runProcess("sqlite3", [ledger, "UPDATE meta SET value = 7 WHERE name = 'generation'"]))
                }
                let refused = try await Self.issue(server, token: token, key: key)
                #expect(refused.status == 503 && refused.message.contains("was replaced under this process"), "\(how): \(refused)")
                let revoke = try await server.http("POST", "/v1/revocations", json: "{\"serial\":1,\"reason\":\"x\"}",
                                                   headers: ["Authorization": "Bearer \(security)"])
                #expect(revoke.status == 503, "\(how): revocation \(revoke.status) \(String(decoding: revoke.body, as: UTF8.self))")
                let health = try await server.http("GET", "/healthz")
                #expect(health.status == 503 && String(decoding: health.body, as: UTF8.self).contains("replaced"), "\(how): \(String(decoding: health.body, as: UTF8.self))")
                let count = try checked(try await runProcess("sqlite3", [ledger, "SELECT COUNT(*) FROM certificates; SELECT COUNT(*) FROM revocations"]))
                #expect(count.stdoutText.split(separator: "\n") == ["1", "0"], "\(how): \(count.stdoutText)")
            }
        }
    }
}
